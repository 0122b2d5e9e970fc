//! A function's configuration from its environment: one reader and one error for every function,
//! with the same rules everywhere. Values are trimmed and a blank value is unset; a number must
//! be a whole number that fits the setting's type (never wrapped); a variable that is wrong stops
//! the cold start with its name and what it should be.

use std::fmt::Display;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} has an invalid value: {problem}")]
    Invalid { name: &'static str, problem: String },
}

impl EnvError {
    pub fn invalid(name: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            name,
            problem: problem.into(),
        }
    }
}

/// Variables by name, from the process environment or from a lookup given in tests.
pub struct Env<F> {
    get: F,
}

/// The process environment.
pub fn process() -> Env<impl Fn(&str) -> Option<String>> {
    Env::new(|name: &str| std::env::var(name).ok())
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(get: F) -> Self {
        Self { get }
    }

    /// The value, trimmed; `None` when unset or blank.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.get)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, EnvError> {
        self.optional(name).ok_or(EnvError::Missing(name))
    }

    /// A whole number of the setting's type, or `default` when unset.
    pub fn number<T>(&self, name: &'static str, default: T) -> Result<T, EnvError>
    where
        T: FromStr + Display + Bounded,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                EnvError::invalid(name, format!("expected a whole number up to {}", T::MAX))
            }),
        }
    }

    /// [`Env::number`] that must be at least 1.
    pub fn positive<T>(&self, name: &'static str, default: T) -> Result<T, EnvError>
    where
        T: FromStr + Display + Bounded + PartialOrd + From<u8>,
    {
        let n = self.number(name, default)?;
        if n < T::from(1) {
            return Err(EnvError::invalid(name, "expected at least 1"));
        }
        Ok(n)
    }

    /// [`Env::number`] that must be at most `limit`.
    pub fn at_most<T>(&self, name: &'static str, default: T, limit: T) -> Result<T, EnvError>
    where
        T: FromStr + Display + Bounded + PartialOrd,
    {
        let n = self.number(name, default)?;
        if n > limit {
            return Err(EnvError::invalid(name, format!("at most {limit}")));
        }
        Ok(n)
    }
}

/// The largest value of a setting's number type, for the message when a value is out of range.
pub trait Bounded {
    const MAX: Self;
}

impl Bounded for u32 {
    const MAX: Self = u32::MAX;
}

impl Bounded for u64 {
    const MAX: Self = u64::MAX;
}

impl Bounded for usize {
    const MAX: Self = usize::MAX;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env::new(move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn values_are_trimmed_and_blank_is_unset() {
        let e = env(&[("A", "  x "), ("B", "   ")]);
        assert_eq!(e.required("A"), Ok("x".into()));
        assert_eq!(e.required("B"), Err(EnvError::Missing("B")));
        assert_eq!(e.required("C"), Err(EnvError::Missing("C")));
        assert_eq!(e.optional("B"), None);
    }

    #[test]
    fn numbers_fit_their_type_or_are_refused() {
        let e = env(&[
            ("USES", "4294967296"),
            ("SMALL", " 42 "),
            ("WORD", "lots"),
            ("ZERO", "0"),
            ("NEGATIVE", "-1"),
        ]);
        assert_eq!(
            e.number::<u32>("USES", 1),
            Err(EnvError::invalid(
                "USES",
                "expected a whole number up to 4294967295"
            ))
        );
        assert_eq!(e.number::<u64>("USES", 1), Ok(4_294_967_296));
        assert_eq!(e.number::<u32>("SMALL", 1), Ok(42));
        assert_eq!(e.number::<u32>("UNSET", 7), Ok(7));
        assert!(e.number::<u64>("WORD", 1).is_err());
        assert!(e.number::<u64>("NEGATIVE", 1).is_err());
        assert_eq!(
            e.positive::<usize>("ZERO", 5),
            Err(EnvError::invalid("ZERO", "expected at least 1"))
        );
        assert_eq!(
            e.at_most::<u64>("SMALL", 5, 30),
            Err(EnvError::invalid("SMALL", "at most 30"))
        );
        assert_eq!(e.at_most::<u64>("UNSET", 5, 30), Ok(5));
    }
}
