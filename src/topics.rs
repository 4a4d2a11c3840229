//! Topic expressions: a whole-name regular expression (linear-time engine) or a comma-separated list of
//! `*` / `?` glob patterns, compiled once into one matcher.

use regex::{Regex, RegexBuilder};

use crate::api::{TopicSelector, TopicSyntax, MAX_TOPIC_EXPRESSION};

/// Upper bound on the compiled program, so a short expression such as `(a{100}){100}` cannot use
/// unbounded memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Why a topic expression does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicExpressionError {
    /// Nothing to match.
    #[error("the topic expression is empty")]
    Empty,
    /// Longer than the API allows.
    #[error("the topic expression is {0} characters long; the limit is 256")]
    TooLong(usize),
    /// The regex engine rejected it (the text says where and why).
    #[error("invalid regular expression: {0}")]
    Regex(String),
    /// One glob pattern is empty (`a,,b` or a trailing comma).
    #[error("glob pattern {0} is empty (check for doubled or trailing commas)")]
    EmptyGlob(usize),
    /// A glob pattern has a character Kafka does not allow in topic names.
    #[error("glob pattern {index} ({pattern:?}) has {ch:?}, which Kafka does not allow in topic names (letters, digits, '.', '_', '-' and the wildcards * and ?)")]
    GlobCharacter {
        /// 1-based position of the pattern in the list.
        index: usize,
        /// The pattern.
        pattern: String,
        /// The offending character.
        ch: char,
    },
}

/// A compiled topic expression.
#[derive(Debug, Clone)]
pub struct TopicMatcher {
    regex: Regex,
    include_internal: bool,
}

impl TopicMatcher {
    /// Compiles the selector.
    pub fn new(selector: &TopicSelector) -> Result<Self, TopicExpressionError> {
        let expr = selector.expression.as_str();
        if expr.trim().is_empty() {
            return Err(TopicExpressionError::Empty);
        }
        let len = expr.chars().count();
        if len > MAX_TOPIC_EXPRESSION {
            return Err(TopicExpressionError::TooLong(len));
        }
        let pattern = match selector.syntax {
            TopicSyntax::Regex => format!("^(?:{expr})$"),
            TopicSyntax::Glob => glob_to_regex(expr)?,
        };
        let regex = RegexBuilder::new(&pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| TopicExpressionError::Regex(regex_error_text(&e)))?;
        Ok(Self {
            regex,
            include_internal: selector.include_internal,
        })
    }

    /// Whether `topic` is covered.
    pub fn matches(&self, topic: &str) -> bool {
        (self.include_internal || !is_internal(topic)) && self.regex.is_match(topic)
    }
}

/// Kafka's internal topics (`__consumer_offsets`, `__transaction_state`, ...) start with two underscores.
pub fn is_internal(topic: &str) -> bool {
    topic.starts_with("__")
}

fn glob_to_regex(expr: &str) -> Result<String, TopicExpressionError> {
    let mut alternatives = Vec::new();
    for (i, raw) in expr.split(',').enumerate() {
        let pattern = raw.trim();
        if pattern.is_empty() {
            return Err(TopicExpressionError::EmptyGlob(i + 1));
        }
        let mut re = String::with_capacity(pattern.len() * 2);
        for ch in pattern.chars() {
            match ch {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' => re.push(ch),
                '.' => re.push_str("\\."),
                _ => {
                    return Err(TopicExpressionError::GlobCharacter {
                        index: i + 1,
                        pattern: pattern.to_string(),
                        ch,
                    })
                }
            }
        }
        alternatives.push(re);
    }
    Ok(format!("^(?:{})$", alternatives.join("|")))
}

/// The regex crate's error text is multi-line with a caret diagram; keep it on one line for status.
fn regex_error_text(e: &regex::Error) -> String {
    match e {
        regex::Error::CompiledTooBig(_) => {
            "the expression compiles to a program that is too large (simplify repetitions such as {n})"
                .to_string()
        }
        other => {
            let text = other.to_string();
            let last = text.lines().rev().find(|l| l.starts_with("error:"));
            last.map(|l| l.trim_start_matches("error:").trim().to_string())
                .unwrap_or_else(|| text.lines().map(str::trim).collect::<Vec<_>>().join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(expression: &str, syntax: TopicSyntax, include_internal: bool) -> TopicSelector {
        TopicSelector {
            expression: expression.into(),
            syntax,
            include_internal,
        }
    }

    #[test]
    fn regex_matches_whole_names_only() {
        let m = TopicMatcher::new(&sel(r"orders\..*", TopicSyntax::Regex, false)).unwrap();
        assert!(m.matches("orders.eu"));
        assert!(!m.matches("old.orders.eu"));
        assert!(!m.matches("ordersXeu"));
        let alt = TopicMatcher::new(&sel("a|b", TopicSyntax::Regex, false)).unwrap();
        assert!(alt.matches("a") && alt.matches("b") && !alt.matches("ab"));
    }

    #[test]
    fn internal_topics_need_include_internal() {
        let m = TopicMatcher::new(&sel(".*", TopicSyntax::Regex, false)).unwrap();
        assert!(!m.matches("__consumer_offsets"));
        assert!(m.matches("_schemas"));
        let m = TopicMatcher::new(&sel(".*", TopicSyntax::Regex, true)).unwrap();
        assert!(m.matches("__consumer_offsets"));
    }

    #[test]
    fn glob_lists() {
        let m = TopicMatcher::new(&sel("orders.*, pay?", TopicSyntax::Glob, false)).unwrap();
        assert!(m.matches("orders.eu"));
        assert!(m.matches("pay1"));
        assert!(!m.matches("pay12"));
        assert!(!m.matches("ordersXeu"), "a dot in a glob is literal");
    }

    #[test]
    fn bad_expressions() {
        let cases = [
            (
                sel("", TopicSyntax::Regex, false),
                TopicExpressionError::Empty,
            ),
            (
                sel(&"a".repeat(257), TopicSyntax::Regex, false),
                TopicExpressionError::TooLong(257),
            ),
            (
                sel("a,,b", TopicSyntax::Glob, false),
                TopicExpressionError::EmptyGlob(2),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(
                TopicMatcher::new(&s).unwrap_err(),
                want,
                "{:?}",
                s.expression
            );
        }
        let err = TopicMatcher::new(&sel("orders.(", TopicSyntax::Regex, false)).unwrap_err();
        assert!(
            matches!(&err, TopicExpressionError::Regex(t) if t.contains("unclosed group")),
            "{err}"
        );
        let err = TopicMatcher::new(&sel(r"(a)\1", TopicSyntax::Regex, false)).unwrap_err();
        assert!(
            matches!(&err, TopicExpressionError::Regex(t) if t.contains("backreferences")),
            "{err}"
        );
        let err = TopicMatcher::new(&sel("(((a{100}){100}){100})", TopicSyntax::Regex, false))
            .unwrap_err();
        assert!(
            matches!(&err, TopicExpressionError::Regex(t) if t.contains("too large")),
            "{err}"
        );
        let err = TopicMatcher::new(&sel("orders/*", TopicSyntax::Glob, false)).unwrap_err();
        assert!(matches!(
            err,
            TopicExpressionError::GlobCharacter {
                index: 1,
                ch: '/',
                ..
            }
        ));
    }

    #[test]
    fn exactly_256_characters_is_allowed() {
        assert!(TopicMatcher::new(&sel(&"a".repeat(256), TopicSyntax::Regex, false)).is_ok());
    }
}
