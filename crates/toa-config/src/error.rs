//! The one error type of the config layer: every rejection names file, line and field.

use std::fmt;
use std::path::{Path, PathBuf};

/// A rejected config. `Display` is the one line users see, e.g.
/// `proxy.toml:7: rule "web": origin_ports: "20000-20002" has 3 ports but ports "81-85" has 5; ranges map 1:1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{}: cannot read: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    /// The file has no online rule: it would close every listener.
    #[error("{}: no online rules: refusing a config that would close every listener (empty or truncated file?); pass --allow-empty if that is intended", path.display())]
    NoRules { path: PathBuf },
    /// A problem at a known place in the file.
    #[error("{}", Located::fmt_line(self))]
    At(Located),
}

/// Where a config error is and what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// The section the field belongs to, e.g. `rule "web"`, `origin_group "g1"`, `[health]`; empty at top level.
    pub section: String,
    /// The key that is wrong, e.g. `origin_ports`; empty for syntax errors.
    pub field: String,
    pub reason: String,
}

impl Located {
    fn fmt_line(err: &ConfigError) -> String {
        let ConfigError::At(l) = err else {
            unreachable!("only called for ConfigError::At")
        };
        l.to_string()
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.path.display(), self.line)?;
        if !self.section.is_empty() {
            write!(f, "{}: ", self.section)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.reason)
    }
}

/// Maps byte offsets of one source text to 1-based line numbers.
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub fn error(
        &self,
        offset: usize,
        section: impl Into<String>,
        field: impl Into<String>,
        reason: impl fmt::Display,
    ) -> ConfigError {
        ConfigError::At(Located {
            path: self.path.to_path_buf(),
            line: self.line_of(offset),
            section: section.into(),
            field: field.into(),
            reason: reason.to_string(),
        })
    }

    /// Turns a TOML syntax or type error into a located one. toml does not say which key a
    /// type error is about, so the key is read from the start of the offending line.
    pub fn toml_error(&self, err: &toml::de::Error) -> ConfigError {
        let offset = err.span().map_or(0, |s| s.start);
        let line = self.line_of(offset);
        let field = self
            .text
            .lines()
            .nth(line - 1)
            .and_then(|l| {
                let key = l.split('=').next()?.trim();
                let plain = !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                (l.contains('=') && plain).then(|| key.to_string())
            })
            .unwrap_or_default();
        let reason = err.message().trim().replace('\n', " ");
        self.error(offset, "", field, reason)
    }
}
