//! The throughput benchmark of `component worker` (issue #19): what its three binaries share.
//!
//! - `bench-driver` pre-loads encrypted inputs on a queue of its own, starts the process under
//!   test (our worker, sailor-nodejs 2.7.8 running the interop fixture's `request` action, or
//!   `bench-loop`), collects and verifies every output, and samples the process's `/proc`;
//! - `bench-loop` is the bare hand-written loop: the same wire work with no runtime around it;
//! - `bench-api` is the loopback API the `request` calls go to (and the platform's step
//!   endpoint, which both sailors read their step config from).
//!
//! The wire crypto here is written apart from the runtime's (`src/crypto.rs`), as the interop
//! harness's is: an output verified here was not checked against the code that made it.

pub mod storm;

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;

/// The flow's message crypto password (`ELASTICIO_MESSAGE_CRYPTO_PASSWORD`).
pub const CRYPTO_PASSWORD: &str = "bench-crypto-password";
/// The flow's message crypto IV (`ELASTICIO_MESSAGE_CRYPTO_IV`), exactly 16 bytes.
pub const CRYPTO_IV: &str = "bench16bytes--IV";
/// The access token the loopback API accepts, and the step config carries.
pub const ACCESS_TOKEN: &str = "bench-access-token-0123456789";
/// The path of the loopback API's echo endpoint.
pub const ECHO_PATH: &str = "/echo";

/// AES-256-CBC with elastic.io's key derivation (SHA-256 of the password), protocol v1's
/// base64 text on the wire.
#[derive(Clone)]
pub struct Cipher {
    key: [u8; 32],
    iv: [u8; 16],
}

impl Default for Cipher {
    fn default() -> Self {
        Self::new(CRYPTO_PASSWORD, CRYPTO_IV)
    }
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher([redacted])")
    }
}

impl Cipher {
    /// The cipher of `password` and `iv` (16 bytes; panics otherwise).
    pub fn new(password: &str, iv: &str) -> Self {
        Self {
            key: sha2::Sha256::digest(password.as_bytes()).into(),
            iv: iv.as_bytes().try_into().expect("the IV is 16 bytes"),
        }
    }

    /// `plain` encrypted and base64-encoded (protocol v1).
    pub fn encode(&self, plain: &[u8]) -> Vec<u8> {
        let cipher = cbc::Encryptor::<aes::Aes256>::new(&self.key.into(), &self.iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plain);
        base64::engine::general_purpose::STANDARD
            .encode(cipher)
            .into_bytes()
    }

    /// The inverse of [`Cipher::encode`]; `None` for text that is not base64 or does not
    /// decrypt.
    pub fn decode(&self, text: &[u8]) -> Option<Vec<u8>> {
        let cipher = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        cbc::Decryptor::<aes::Aes256>::new(&self.key.into(), &self.iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&cipher)
            .ok()
    }
}

/// The body of input `n`: `{"n": n, "text": ...}`, about `size` bytes of JSON. The API echoes
/// it, so an output carries it back and is checked against it.
pub fn body(n: u64, size: usize) -> Value {
    let head = json!({ "n": n, "text": "" }).to_string().len();
    let filler = size.saturating_sub(head);
    // Varied text, so that nothing on the way compresses or dedups it away.
    let text: String = (0..filler)
        .map(|i| {
            let x = (i as u64).wrapping_mul(2654435761).wrapping_add(n) % 62;
            char::from(match x {
                0..=25 => b'a' + x as u8,
                26..=51 => b'A' + (x - 26) as u8,
                _ => b'0' + (x - 52) as u8,
            })
        })
        .collect();
    json!({ "n": n, "text": text })
}

/// The plaintext of input `n`: an elastic.io message whose body is [`body`].
pub fn input_message(n: u64, size: usize) -> Vec<u8> {
    json!({
        "id": format!("in-{n}"),
        "body": body(n, size),
        "headers": {},
        "attachments": {},
    })
    .to_string()
    .into_bytes()
}

/// What one output says about its input, once decrypted and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A data message whose `body` is `{status: 200, body: <input n's body>}`.
    Good(u64),
    /// Anything else: why.
    Bad(String),
}

/// The headers every output of a sailor carries (sailor-protocol.md 2.4), which the driver
/// checks on every target's outputs: the step's identity and the message's lineage.
pub const PROTOCOL_HEADERS: [&str; 13] = [
    "execId",
    "taskId",
    "workspaceId",
    "containerId",
    "userId",
    "stepId",
    "compId",
    "function",
    "messageId",
    "parentMessageId",
    "threadId",
    "start",
    "end",
];

/// Checks one output against the input it names: `body.status` 200, `body.body` equal to
/// [`body`]`(n, size)`, every one of [`PROTOCOL_HEADERS`] present and `parentMessageId` the
/// input's `messageId` (`in-<n>`).
pub fn verify(
    cipher: &Cipher,
    data: &[u8],
    headers: Option<&lapin::types::FieldTable>,
    size: usize,
) -> Verdict {
    let n = match verify_body(cipher, data, size) {
        Verdict::Good(n) => n,
        bad => return bad,
    };
    let headers = headers.map(|h| h.inner());
    let header = |name: &str| headers.and_then(|h| h.get(name));
    if let Some(missing) = PROTOCOL_HEADERS.iter().find(|name| header(name).is_none()) {
        return Verdict::Bad(format!("the output of input {n} has no `{missing}` header"));
    }
    let parent = match header("parentMessageId") {
        Some(lapin::types::AMQPValue::LongString(text)) => text.to_string(),
        other => format!("{other:?}"),
    };
    if parent != format!("in-{n}") {
        return Verdict::Bad(format!(
            "the output of input {n} has parentMessageId {parent}, not in-{n}"
        ));
    }
    Verdict::Good(n)
}

fn verify_body(cipher: &Cipher, data: &[u8], size: usize) -> Verdict {
    let Some(plain) = cipher.decode(data) else {
        let start = String::from_utf8_lossy(&data[..data.len().min(200)]).into_owned();
        return Verdict::Bad(format!("not a protocol v1 data message: {start}"));
    };
    let Ok(message) = serde_json::from_slice::<Value>(&plain) else {
        return Verdict::Bad("the plaintext is not JSON".into());
    };
    let result = &message["body"];
    if result["status"] != json!(200) {
        return Verdict::Bad(format!("status {} (not 200)", result["status"]));
    }
    let Some(n) = result["body"]["n"].as_u64() else {
        return Verdict::Bad("the echoed body has no `n`".into());
    };
    if result["body"] != body(n, size) {
        return Verdict::Bad(format!("the echoed body of input {n} differs from it"));
    }
    Verdict::Good(n)
}

/// A process's own CPU time so far (user + system), in seconds: the nanoseconds each of its
/// threads has run, summed over `/proc/<pid>/task/*/schedstat`. `/proc/<pid>/stat` counts
/// 10 ms ticks, too coarse for runs that take a fraction of a second; it is read only where
/// schedstat is missing. The benchmarked processes keep their threads for the whole run, so
/// no thread's time leaves the sum between two readings.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    thread_run_nanos(pid)
        .map(|nanos| nanos as f64 / 1e9)
        .or_else(|| stat_cpu_seconds(pid))
}

fn thread_run_nanos(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let schedstat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += schedstat.split(' ').next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

fn stat_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks_per_second())
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on (the kernel's USER_HZ).
fn clock_ticks_per_second() -> f64 {
    100.0
}

/// A process's peak resident set (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_asked_size_and_differ_per_input() {
        for size in [256, 1024, 4096] {
            assert_eq!(body(7, size).to_string().len(), size);
        }
        assert_ne!(body(1, 300), body(2, 300));
    }

    #[test]
    fn an_echoed_output_verifies_and_a_wrong_one_does_not() {
        let cipher = Cipher::default();
        let output =
            json!({"id": "x", "body": {"status": 200, "headers": {}, "body": body(3, 500)}});
        let data = cipher.encode(output.to_string().as_bytes());
        let mut headers = lapin::types::FieldTable::default();
        for name in PROTOCOL_HEADERS {
            headers.insert(name.into(), lapin::types::AMQPValue::LongString("x".into()));
        }
        headers.insert(
            "parentMessageId".into(),
            lapin::types::AMQPValue::LongString("in-3".into()),
        );
        assert_eq!(
            verify(&cipher, &data, Some(&headers), 500),
            Verdict::Good(3)
        );
        let wrong = json!({"body": {"status": 200, "body": body(3, 400)}});
        let wrong = cipher.encode(wrong.to_string().as_bytes());
        assert!(matches!(
            verify(&cipher, &wrong, Some(&headers), 500),
            Verdict::Bad(_)
        ));
        assert!(matches!(
            verify(&cipher, b"{}", Some(&headers), 500),
            Verdict::Bad(_)
        ));
        assert!(matches!(verify(&cipher, &data, None, 500), Verdict::Bad(_)));
        headers.insert(
            "parentMessageId".into(),
            lapin::types::AMQPValue::LongString("in-4".into()),
        );
        assert!(matches!(
            verify(&cipher, &data, Some(&headers), 500),
            Verdict::Bad(_)
        ));
    }

    #[test]
    fn this_process_has_cpu_time_and_a_peak_rss() {
        let pid = std::process::id();
        assert!(peak_rss_kib(pid).unwrap() > 0);
        // Spin until the nanosecond reading has seen 50 ms of CPU; the ticks agree.
        let (before, before_ticks) = (cpu_seconds(pid).unwrap(), stat_cpu_seconds(pid).unwrap());
        let start = std::time::Instant::now();
        while cpu_seconds(pid).unwrap() - before < 0.05 {
            assert!(start.elapsed().as_secs() < 10, "the CPU time does not grow");
        }
        let ticked = stat_cpu_seconds(pid).unwrap() - before_ticks;
        assert!(
            ticked >= 0.02,
            "{ticked} s in ticks against 0.05 s in nanoseconds"
        );
    }
}
