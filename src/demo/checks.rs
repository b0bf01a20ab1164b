//! The demo's expectations: what must be true for the demo to exit 0.
//!
//! Each check is stated as the promise it verifies, so a failing demo says which promise the
//! runtime broke rather than which number was off.

/// The checks made so far and the ones that failed. A promise checked in several rounds is
/// listed once among the kept ones.
#[derive(Debug, Default)]
pub struct Checks {
    passed: Vec<String>,
    failed: Vec<String>,
}

impl Checks {
    /// Records `promise` as kept when `kept`, else as broken with `detail`.
    pub fn expect(
        &mut self,
        kept: bool,
        promise: impl Into<String>,
        detail: impl FnOnce() -> String,
    ) {
        let promise = promise.into();
        if kept {
            if !self.passed.contains(&promise) {
                self.passed.push(promise);
            }
        } else {
            self.failed.push(format!("{promise} ({})", detail()));
        }
    }

    /// Records that `actual` equals `expected`.
    pub fn expect_eq<T: PartialEq + std::fmt::Debug>(
        &mut self,
        actual: T,
        expected: T,
        promise: impl Into<String>,
    ) {
        let kept = actual == expected;
        self.expect(kept, promise, || {
            format!("expected {expected:?}, got {actual:?}")
        });
    }

    /// The promises kept, in order.
    pub fn passed(&self) -> &[String] {
        &self.passed
    }

    /// The promises broken, with what was seen instead.
    pub fn failed(&self) -> &[String] {
        &self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_promises_say_what_was_seen() {
        let mut checks = Checks::default();
        checks.expect_eq(1, 1, "one is one");
        checks.expect_eq(2, 3, "two token requests");
        assert_eq!(checks.passed(), ["one is one"]);
        assert_eq!(checks.failed(), ["two token requests (expected 3, got 2)"]);
    }
}
