//! Swept keys and their values, and scenarios with values overridden by dotted key.

use crate::error::SimError;
use crate::scenario::Scenario;

/// Why a sweep's parameters are refused.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// `--set` without `KEY=`.
    #[error("`{0}` is not KEY=V1,V2,...")]
    Syntax(String),
    /// `KEY=` with no value.
    #[error("{key}: the list of values is empty")]
    EmptyList {
        /// The key.
        key: String,
    },
    /// `KEY=1,,2`: an empty item.
    #[error("{key}: value {index} of the list is empty")]
    EmptyValue {
        /// The key.
        key: String,
        /// Its position, from 1.
        index: usize,
    },
    /// The scenario has no such key.
    #[error(
        "unknown key `{key}`; the scenario's keys are: {} (and the optional keys it leaves \
         unset, such as duration_ticks and pools.capacity)",
        valid.join(", ")
    )]
    UnknownKey {
        /// The key.
        key: String,
        /// The scenario's keys (dotted), sorted.
        valid: Vec<String>,
    },
    /// The value does not fit the key's type (a word for a number, a float for an
    /// integer).
    #[error("{key} = {value}: {reason}")]
    WrongType {
        /// The key.
        key: String,
        /// The value, as given.
        value: String,
        /// The scenario parser's message.
        reason: String,
    },
    /// The values fit their keys, but the scenario they make is out of range.
    /// (The validation error is part of the message and not also its `source`, so that a
    /// chain printed whole, as the CLI prints it, does not say it twice.)
    #[error("{settings}: {error}")]
    Invalid {
        /// The settings (`key = value, ...`).
        settings: String,
        /// The scenario's validation error.
        error: SimError,
    },
}

/// A swept key and its values: `topology.agents=100,200,400`.
///
/// Values are TOML values (`100`, `0.5`, `true`, `"text"`, `[1.0, 2.0]`); a word that is no
/// TOML value is taken as a string, so `allocation.policy=reactive,predictive` needs no
/// quotes. Commas inside brackets, braces or quotes do not split the list.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepParam {
    /// The dotted key.
    pub key: String,
    /// Its values, in the given order.
    pub values: Vec<toml::Value>,
}

impl SweepParam {
    /// Parses `KEY=V1,V2,...`.
    ///
    /// # Errors
    ///
    /// [`SweepError::Syntax`] without `=` or a key, [`SweepError::EmptyList`],
    /// [`SweepError::EmptyValue`].
    pub fn parse(arg: &str) -> Result<SweepParam, SweepError> {
        let Some((key, list)) = arg.split_once('=') else {
            return Err(SweepError::Syntax(qorch_qubo::quote(arg)));
        };
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(SweepError::Syntax(qorch_qubo::quote(arg)));
        }
        if list.trim().is_empty() {
            return Err(SweepError::EmptyList {
                key: key.to_owned(),
            });
        }
        let values = split_top_level(list)
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let item = item.trim();
                if item.is_empty() {
                    Err(SweepError::EmptyValue {
                        key: key.to_owned(),
                        index: i + 1,
                    })
                } else {
                    Ok(parse_value(item))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(SweepParam {
            key: key.to_owned(),
            values,
        })
    }

    /// The values as they read in tables and directory names: strings bare, the others in
    /// TOML.
    pub fn labels(&self) -> Vec<String> {
        self.values.iter().map(label).collect()
    }
}

/// A value as it reads in tables: a string bare, anything else in TOML.
pub(crate) fn label(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A TOML value, or the text as a string when it is none.
fn parse_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .filter(|t| t.len() == 1)
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

/// Splits at commas outside brackets, braces and quotes.
fn split_top_level(list: &str) -> Vec<&str> {
    let (mut depth, mut quote, mut start) = (0_i32, None::<char>, 0);
    let mut items = Vec::new();
    for (i, c) in list.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth <= 0 => {
                items.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&list[start..]);
    items
}

impl Scenario {
    /// This scenario with each `(dotted key, value)` set, parsed as strictly as a scenario
    /// file (unknown keys and wrong types refused) and validated.
    ///
    /// # Errors
    ///
    /// [`SweepError::UnknownKey`] listing the valid keys, [`SweepError::WrongType`], or
    /// [`SweepError::Invalid`] for values out of range.
    pub fn with_overrides(&self, sets: &[(&str, &toml::Value)]) -> Result<Scenario, SweepError> {
        let mut doc = toml::Value::try_from(self).map_err(|e| SweepError::WrongType {
            key: String::new(),
            value: String::new(),
            reason: e.to_string(),
        })?;
        for (key, value) in sets {
            if !set_dotted(&mut doc, key, (*value).clone()) {
                return Err(self.unknown(key));
            }
            // Each value alone, so that the error names the key at fault.
            let mut alone = toml::Value::try_from(self).unwrap_or_else(|_| doc.clone());
            set_dotted(&mut alone, key, (*value).clone());
            if let Err(e) = alone.try_into::<Scenario>() {
                let reason = e.message().to_owned();
                if reason.contains("unknown field") {
                    return Err(self.unknown(key));
                }
                return Err(SweepError::WrongType {
                    key: (*key).to_owned(),
                    value: qorch_qubo::quote(&label(value)),
                    reason,
                });
            }
        }
        let settings = || {
            sets.iter()
                .map(|(k, v)| format!("{k} = {}", qorch_qubo::quote(&label(v))))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let s: Scenario = doc
            .try_into()
            .map_err(|e: toml::de::Error| SweepError::WrongType {
                key: settings(),
                value: String::new(),
                reason: e.message().to_owned(),
            })?;
        s.validate().map_err(|error| SweepError::Invalid {
            settings: settings(),
            error,
        })?;
        Ok(s)
    }

    /// The scenario's keys, dotted and sorted: every value that is not a table
    /// (lists such as `pools.kinds` and `faults` included). Optional keys that are unset
    /// (`duration_ticks`, `pools.capacity`) are settable too but not listed.
    pub fn keys(&self) -> Vec<String> {
        fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
            match v {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        let key = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(&key, v, out);
                    }
                }
                _ => out.push(prefix.to_owned()),
            }
        }
        let mut out = Vec::new();
        if let Ok(doc) = toml::Value::try_from(self) {
            walk("", &doc, &mut out);
        }
        out
    }

    fn unknown(&self, key: &str) -> SweepError {
        SweepError::UnknownKey {
            key: qorch_qubo::quote(key),
            valid: self.keys(),
        }
    }
}

/// Sets `doc.a.b.c = value`, creating missing tables; false if a part of the path is a
/// value, not a table.
fn set_dotted(doc: &mut toml::Value, key: &str, value: toml::Value) -> bool {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else {
        return false;
    };
    let mut at = doc;
    for part in parts {
        let Some(table) = at.as_table_mut() else {
            return false;
        };
        at = table
            .entry(part)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    match at.as_table_mut() {
        Some(table) => {
            table.insert(last.to_owned(), value);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(arg: &str, expected: &[&str]) {
        let p = SweepParam::parse(arg).unwrap();
        assert_eq!(p.labels(), expected, "{arg}");
    }

    #[test]
    fn lists_split_at_top_level_commas_only() {
        check("a=1,2", &["1", "2"]);
        check("a=reactive, predictive", &["reactive", "predictive"]);
        check("a=[1.0, 2.0],[3.0]", &["[1.0, 2.0]", "[3.0]"]);
        check("a=\"x,y\",z", &["x,y", "z"]);
        check("a=0.5,1e3,true", &["0.5", "1000.0", "true"]);
    }

    #[test]
    fn bad_lists_are_refused() {
        for (arg, want) in [
            ("a", "is not KEY="),
            ("=1", "is not KEY="),
            ("a..b=1", "is not KEY="),
            ("a=", "empty"),
            ("a= ", "empty"),
            ("a=1,,2", "value 2 of the list is empty"),
        ] {
            let e = SweepParam::parse(arg).unwrap_err().to_string();
            assert!(e.contains(want), "{arg}: {e}");
        }
    }

    #[test]
    fn overrides_go_through_the_scenarios_parsing_and_validation() {
        let base = Scenario::default();
        let set = |k: &str, v: &str| {
            let p = SweepParam::parse(&format!("{k}={v}")).unwrap();
            base.with_overrides(&[(&p.key, &p.values[0])])
        };
        assert_eq!(set("pools.count", "7").unwrap().pools.count, 7);
        assert_eq!(
            set("behaviour.locality", "1").unwrap().behaviour.locality,
            1.0
        );
        assert_eq!(
            set("duration_ticks", "40").unwrap().duration_ticks,
            Some(40)
        );
        assert_eq!(set("solver.name", "tabu").unwrap().solver.name, "tabu");
        let e = set("topology.agnets", "3").unwrap_err().to_string();
        assert!(e.contains("unknown key `topology.agnets`"), "{e}");
        assert!(
            e.contains("topology.agents") && e.contains("pools.count"),
            "{e}"
        );
        for bad in ["nosuch.key", "seed.x", "topology"] {
            let e = set(bad, "3").unwrap_err();
            assert!(
                matches!(
                    e,
                    SweepError::UnknownKey { .. } | SweepError::WrongType { .. }
                ),
                "{bad}: {e}"
            );
        }
        let e = set("topology.agents", "many").unwrap_err().to_string();
        assert!(e.starts_with("topology.agents = many: "), "{e}");
        let e = set("topology.agents", "2.5").unwrap_err().to_string();
        assert!(e.starts_with("topology.agents = 2.5: "), "{e}");
        let err = set("topology.agents", "0").unwrap_err();
        // The whole chain, as the CLI prints it, names the problem once.
        let mut chain = err.to_string();
        let mut next = std::error::Error::source(&err);
        while let Some(s) = next {
            chain = format!("{chain}: {s}");
            next = s.source();
        }
        assert_eq!(
            chain.matches("topology.agents must be at least 1").count(),
            1,
            "{chain}"
        );
    }

    #[test]
    fn keys_list_the_sections_leaves() {
        let keys = Scenario::default().keys();
        for k in [
            "seed",
            "topology.agents",
            "behaviour.message_work",
            "faults",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }
}
