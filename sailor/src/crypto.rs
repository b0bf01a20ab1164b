//! The message cipher of elastic.io's sailors: AES-256-CBC with PKCS#7 padding.
//!
//! The key is the SHA-256 of the crypto password, the IV the 16 bytes of
//! `ELASTICIO_MESSAGE_CRYPTO_IV` as given; the same IV serves every message, exactly as in
//! sailor-nodejs and sailor-jvm (no MAC, no per-message IV), because compatibility demands it.
//! Protocol v1 carries the ciphertext as base64 text, v2 as raw bytes.

use aes::cipher::{
    BlockDecryptMut as _, BlockEncryptMut as _, InnerIvInit as _, KeyInit as _,
    block_padding::Pkcs7,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest as _, Sha256};

use crate::secret::Password;

type Encryptor = cbc::Encryptor<aes::Aes256Enc>;
type Decryptor = cbc::Decryptor<aes::Aes256Dec>;

/// The length the IV must have, in bytes.
pub const IV_LEN: usize = 16;

/// AES's block, which the padding fills.
const BLOCK_LEN: usize = 16;

/// Why a body could not be decrypted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecryptError {
    /// A v1 body that is not base64 text.
    #[error("the message body is not base64: {0}")]
    Base64(String),
    /// Wrong key or IV, or a truncated body.
    #[error("the message body does not decrypt (wrong password or IV, or a damaged body)")]
    Cipher,
}

/// The IV has the wrong length.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the IV must be exactly {IV_LEN} bytes, not {0}")]
pub struct BadIv(pub usize);

/// How a body is laid out on the wire (the `protocolVersion` AMQP header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Protocol 1: base64 text of the ciphertext.
    Base64,
    /// Protocol 2: the raw ciphertext.
    Raw,
}

impl Encoding {
    /// The encoding of a `protocolVersion` value; missing or below 2 means base64.
    pub fn from_protocol_version(version: Option<i64>) -> Self {
        match version {
            Some(v) if v >= 2 => Self::Raw,
            _ => Self::Base64,
        }
    }

    /// The `protocolVersion` header value for this encoding.
    pub fn protocol_version(self) -> i64 {
        match self {
            Self::Base64 => 1,
            Self::Raw => 2,
        }
    }
}

/// The cipher of one worker: key and IV. Its `Debug` shows neither.
///
/// The key is kept as AES's round keys, expanded once for encryption and once for
/// decryption: every message of the worker uses the same key, and expanding it was a tenth
/// of what encrypting a message cost.
#[derive(Clone)]
pub struct MessageCipher {
    encryption: aes::Aes256Enc,
    decryption: aes::Aes256Dec,
    iv: [u8; IV_LEN],
}

impl std::fmt::Debug for MessageCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageCipher([redacted])")
    }
}

impl MessageCipher {
    /// The cipher for `password` and the IV text (which must be 16 bytes of UTF-8).
    pub fn new(password: &Password, iv: &str) -> Result<Self, BadIv> {
        let iv: [u8; IV_LEN] = iv.as_bytes().try_into().map_err(|_| BadIv(iv.len()))?;
        let key = Sha256::digest(password.expose_secret().as_bytes());
        Ok(Self {
            encryption: aes::Aes256Enc::new(&key),
            decryption: aes::Aes256Dec::new(&key),
            iv,
        })
    }

    fn encryptor(&self) -> Encryptor {
        Encryptor::inner_iv_init(self.encryption.clone(), &self.iv.into())
    }

    fn decryptor(&self) -> Decryptor {
        Decryptor::inner_iv_init(self.decryption.clone(), &self.iv.into())
    }

    /// The raw ciphertext of `plaintext`.
    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        self.encryptor().encrypt_padded_vec_mut::<Pkcs7>(plaintext)
    }

    /// The plaintext of a raw ciphertext.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, DecryptError> {
        self.decrypt_in_place(ciphertext.to_vec())
    }

    /// The plaintext of a raw ciphertext, decrypted in its own buffer.
    fn decrypt_in_place(&self, mut buffer: Vec<u8>) -> Result<Vec<u8>, DecryptError> {
        let plaintext = self
            .decryptor()
            .decrypt_padded_mut::<Pkcs7>(&mut buffer)
            .map_err(|_| DecryptError::Cipher)?
            .len();
        buffer.truncate(plaintext);
        Ok(buffer)
    }

    /// Encrypts and lays the ciphertext out as `encoding` says.
    pub fn encode(&self, plaintext: &[u8], encoding: Encoding) -> Vec<u8> {
        self.encode_owned(plaintext.to_vec(), encoding)
    }

    /// [`Self::encode`] of a plaintext the caller is done with: encrypted in its own buffer.
    pub fn encode_owned(&self, mut plaintext: Vec<u8>, encoding: Encoding) -> Vec<u8> {
        let length = plaintext.len();
        // PKCS#7 always pads, by 1 to a whole block.
        plaintext.resize((length / BLOCK_LEN + 1) * BLOCK_LEN, 0);
        let encrypted = self
            .encryptor()
            .encrypt_padded_mut::<Pkcs7>(&mut plaintext, length)
            .expect("the buffer has room for the padding")
            .len();
        plaintext.truncate(encrypted);
        let ciphertext = plaintext;
        match encoding {
            Encoding::Raw => ciphertext,
            Encoding::Base64 => {
                // Written as bytes: `Engine::encode` would check its own output as UTF-8.
                let length = base64::encoded_len(ciphertext.len(), true)
                    .expect("a message is far shorter than a quarter of the address space");
                let mut text = vec![0; length];
                let written = BASE64
                    .encode_slice(&ciphertext, &mut text)
                    .expect("the buffer is the encoded length");
                text.truncate(written);
                text
            }
        }
    }

    /// Encrypts into base64 text, as the fields of error messages carry it.
    pub fn encode_base64(&self, plaintext: &[u8]) -> String {
        BASE64.encode(self.encrypt(plaintext))
    }

    /// Reads a body laid out as `encoding` says and decrypts it.
    pub fn decode(&self, body: &[u8], encoding: Encoding) -> Result<Vec<u8>, DecryptError> {
        match encoding {
            Encoding::Raw => self.decrypt(body),
            Encoding::Base64 => {
                // Node decodes leniently; surrounding whitespace is the usual slack.
                let text = body.trim_ascii();
                let ciphertext = BASE64
                    .decode(text)
                    .map_err(|error| DecryptError::Base64(error.to_string()))?;
                self.decrypt_in_place(ciphertext)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAINTEXT: &[u8] = br#"{"body":{"hello":"world"}}"#;

    fn cipher() -> MessageCipher {
        MessageCipher::new(&Password::new("testCryptoPassword"), "iv=any16_symbols").unwrap()
    }

    #[test]
    fn the_design_test_vector_encodes_as_v1_and_v2() {
        let v1 = cipher().encode(PLAINTEXT, Encoding::Base64);
        assert_eq!(v1, b"axyl/YcFb4wgFzIyJ9McA9xyf/alvd9InmVcpgXq9OA=");
        let v2 = cipher().encode(PLAINTEXT, Encoding::Raw);
        let hex: String = v2.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "6b1ca5fd87056f8c2017323227d31c03dc727ff6a5bddf489e655ca605eaf4e0"
        );
    }

    #[test]
    fn both_encodings_decode_back_to_the_plaintext() {
        for encoding in [Encoding::Base64, Encoding::Raw] {
            let body = cipher().encode(PLAINTEXT, encoding);
            assert_eq!(cipher().decode(&body, encoding).unwrap(), PLAINTEXT);
        }
    }

    #[test]
    fn encrypting_in_place_pads_as_the_block_mode_does_at_every_length() {
        use base64::Engine as _;
        let cipher = cipher();
        for length in 0..=50 {
            let plaintext: Vec<u8> = (0..length).map(|i| b'a' + (i % 26) as u8).collect();
            let reference = cipher
                .encryptor()
                .encrypt_padded_vec_mut::<Pkcs7>(&plaintext);
            assert_eq!(reference.len() % BLOCK_LEN, 0);
            let raw = cipher.encode_owned(plaintext.clone(), Encoding::Raw);
            assert_eq!(raw, reference, "length {length}");
            let text = cipher.encode_owned(plaintext.clone(), Encoding::Base64);
            assert_eq!(
                text,
                BASE64.encode(&reference).into_bytes(),
                "length {length}"
            );
            for (body, encoding) in [(raw, Encoding::Raw), (text, Encoding::Base64)] {
                assert_eq!(cipher.decode(&body, encoding).unwrap(), plaintext);
            }
        }
    }

    #[test]
    fn a_wrong_password_or_garbage_is_an_error_not_a_panic() {
        let body = cipher().encode(PLAINTEXT, Encoding::Raw);
        let other = MessageCipher::new(&Password::new("other"), "iv=any16_symbols").unwrap();
        assert_eq!(
            other.decode(&body, Encoding::Raw),
            Err(DecryptError::Cipher)
        );
        assert!(matches!(
            cipher().decode(b"%%%not base64", Encoding::Base64),
            Err(DecryptError::Base64(_))
        ));
        assert_eq!(
            cipher().decode(b"abc", Encoding::Raw),
            Err(DecryptError::Cipher)
        );
    }

    #[test]
    fn the_iv_must_be_sixteen_bytes() {
        let error = MessageCipher::new(&Password::new("p"), "short").unwrap_err();
        assert_eq!(error, BadIv(5));
    }

    #[test]
    fn protocol_versions_choose_the_encoding() {
        assert_eq!(Encoding::from_protocol_version(None), Encoding::Base64);
        assert_eq!(Encoding::from_protocol_version(Some(1)), Encoding::Base64);
        assert_eq!(Encoding::from_protocol_version(Some(2)), Encoding::Raw);
        assert_eq!(Encoding::from_protocol_version(Some(3)), Encoding::Raw);
    }

    #[test]
    fn debug_hides_key_and_iv() {
        assert_eq!(format!("{:?}", cipher()), "MessageCipher([redacted])");
    }
}
