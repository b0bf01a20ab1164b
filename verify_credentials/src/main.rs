//! The `verify_credentials` binary: checks a credential when a user connects an account.

fn main() {
    eprintln!("verify_credentials: not built yet");
    std::process::exit(2);
}
