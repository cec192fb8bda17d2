//! A rule's origins: its own `origins` list or an `[[origin_group]]`, resolved to one
//! [`OriginSpec`] per address when the rule is online.

use std::net::IpAddr;
use std::ops::Range;

use crate::OriginSpec;
use crate::dns::{LookupError, lookup};
use crate::error::{ConfigError, Source};
use crate::raw::RawRule;
use crate::sections::{GroupOrigin, resolve};

/// Resolved origins, the names as written, and the group name (if the rule uses one).
type Origins = (Vec<OriginSpec>, Vec<String>, Option<String>);

/// `err` and `missing` build errors located in the rule, as `rule::rule` does.
pub(super) fn validate(
    src: &Source,
    raw: &RawRule,
    groups: &[(String, Vec<GroupOrigin>)],
    online: bool,
    err: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
    missing: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<Origins, ConfigError> {
    Ok(match (&raw.origins, &raw.origin_group) {
        (Some(_), Some(g)) => {
            return Err(err(
                g.span(),
                "origin_group",
                "set together with origins; use one of them".into(),
            ));
        }
        (None, None) => {
            return Err(missing(
                "origins",
                "set origins = [...] or origin_group = \"name\"",
            ));
        }
        (None, Some(g)) => match groups.iter().find(|(n, _)| n == g.get_ref()) {
            Some((group, list)) => {
                let mut resolved = Vec::new();
                for o in list.iter().filter(|_| online) {
                    resolved.extend(resolve(&o.name, o.weight).map_err(|r| {
                        src.error(o.offset, format!("origin_group \"{group}\""), "origins", r)
                    })?);
                }
                (resolved, Vec::new(), Some(g.get_ref().clone()))
            }
            None => {
                return Err(err(
                    g.span(),
                    "origin_group",
                    format!("no [[origin_group]] named \"{}\"", g.get_ref()),
                ));
            }
        },
        (Some(list), None) => {
            if list.get_ref().is_empty() {
                return Err(err(
                    list.span(),
                    "origins",
                    "empty; list at least one origin".into(),
                ));
            }
            let mut resolved = Vec::new();
            for o in list.get_ref() {
                let literal = o.get_ref().parse::<IpAddr>().is_ok();
                if online || literal {
                    resolved.extend(
                        resolve(o.get_ref(), 1)
                            .map_err(|r| err(o.span(), "origins", r.to_string()))?,
                    );
                } else if let Err(hint @ LookupError::HasPort { .. }) = lookup(o.get_ref()) {
                    // A "host:port" is wrong whether or not the rule is online.
                    return Err(err(o.span(), "origins", hint.to_string()));
                }
            }
            let names = list.get_ref().iter().map(|o| o.get_ref().clone()).collect();
            (resolved, names, None)
        }
    })
}
