//! The `tickets` binary: `worker`, `run`, `validate` and `verify`, from the runtime's entry
//! point.

fn main() -> std::process::ExitCode {
    sailor::entry::Component::new(tickets::registry())
        .descriptor(tickets::DESCRIPTOR)
        .verifier(tickets::verifier::DeskVerifier)
        .main()
}
