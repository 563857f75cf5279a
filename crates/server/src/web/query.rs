//! Query strings with repeated keys (`filter=a&filter=b`), which serde's
//! urlencoded extractor cannot express, with typed getters whose errors say
//! which parameter is wrong.

use std::collections::HashMap;

use super::error::ApiError;

/// A parsed query string.
#[derive(Debug, Default)]
pub struct Query {
    values: HashMap<String, Vec<String>>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let mut values: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            values
                .entry(k.into_owned())
                .or_default()
                .push(v.into_owned());
        }
        Query { values }
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.values.get(key).cloned().unwrap_or_default()
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some("true" | "1" | "yes" | "") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(ApiError::BadRequest(format!(
                "{key} must be true or false, not {other:?}"
            ))),
        }
    }

    /// An integer in `min..=max`.
    pub fn u64_in(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        let n: u64 = v.trim().parse().map_err(|_| {
            ApiError::BadRequest(format!("{key} must be a whole number, not {v:?}"))
        })?;
        if n < min || n > max {
            return Err(ApiError::BadRequest(format!(
                "{key} must be between {min} and {max}, not {n}"
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_and_types() {
        let q = Query::parse(Some("filter=a%2F%2B&filter=b/%23&retained=true&timeout=5"));
        assert_eq!(q.all("filter"), vec!["a/+", "b/#"]);
        assert!(q.bool("retained", false).expect("bool"));
        assert_eq!(q.u64_in("timeout", 30, 0, 60).expect("n"), 5);
        assert!(q.u64_in("timeout", 30, 0, 4).is_err());
        assert!(Query::parse(Some("x=y")).bool("x", false).is_err());
        assert_eq!(Query::parse(None).u64_in("t", 7, 0, 9).expect("default"), 7);
    }
}
