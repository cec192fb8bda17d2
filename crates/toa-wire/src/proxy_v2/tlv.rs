//! PROXY v2 TLVs: the typed extensions after the address block (proxy-protocol.txt 2.2).
//!
//! Every TLV is `type(1) length(2, big-endian) value(length)`. The SSL TLV nests a
//! second level of TLVs after its own `client(1) verify(4)` fields.

use super::Error;

const ALPN: u8 = 0x01;
const AUTHORITY: u8 = 0x02;
const CRC32C: u8 = 0x03;
const NOOP: u8 = 0x04;
const UNIQUE_ID: u8 = 0x05;
const SSL: u8 = 0x20;
const SSL_VERSION: u8 = 0x21;
const SSL_CN: u8 = 0x22;
const SSL_CIPHER: u8 = 0x23;
const SSL_SIG_ALG: u8 = 0x24;
const SSL_KEY_ALG: u8 = 0x25;
const NETNS: u8 = 0x30;

/// Types reserved for application-specific data ([`Tlv::Custom`]).
pub const CUSTOM_KINDS: std::ops::RangeInclusive<u8> = 0xE0..=0xEF;
/// The longest [`Tlv::UniqueId`] the spec allows.
pub const UNIQUE_ID_MAX_LEN: usize = 128;
/// [`Tlv::Ssl`] `client` bit: the client connected over SSL/TLS.
pub const SSL_CLIENT_SSL: u8 = 0x01;
/// [`Tlv::Ssl`] `client` bit: the client presented a certificate on this connection.
pub const SSL_CLIENT_CERT_CONN: u8 = 0x02;
/// [`Tlv::Ssl`] `client` bit: the client presented a certificate in this TLS session.
pub const SSL_CLIENT_CERT_SESS: u8 = 0x04;

/// One PROXY v2 TLV.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tlv {
    /// The upper-layer protocol, typically a copy of the TLS ALPN extension.
    Alpn(Vec<u8>),
    /// The host name the client asked for (TLS SNI or similar), UTF-8.
    Authority(String),
    /// A CRC32C of the whole header. Encoding computes it; parsing verifies it, so the
    /// value itself is never exposed.
    Crc32c,
    /// Padding of `len` bytes, ignored by receivers (encoded as zeros).
    Noop { len: u16 },
    /// An opaque connection id of at most [`UNIQUE_ID_MAX_LEN`] bytes.
    UniqueId(Vec<u8>),
    /// TLS details: `client` is a set of `SSL_CLIENT_*` bits, `verify` is 0 when the
    /// client certificate was verified.
    Ssl {
        client: u8,
        verify: u32,
        sub_tlvs: Vec<SslTlv>,
    },
    /// The name of the network namespace the connection came from.
    Netns(String),
    /// Application-specific data, `kind` in [`CUSTOM_KINDS`].
    Custom { kind: u8, value: Vec<u8> },
    /// Any other type (unassigned, experimental 0xF0-0xF7, future 0xF8-0xFF), kept
    /// as-is so a receiver may ignore it and a relay may forward it.
    Other { kind: u8, value: Vec<u8> },
}

/// A second-level TLV inside [`Tlv::Ssl`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SslTlv {
    /// TLS version, e.g. `TLSv1.3`.
    Version(String),
    /// Common Name of the client certificate's subject.
    CommonName(String),
    /// Cipher name, e.g. `ECDHE-RSA-AES128-GCM-SHA256`.
    Cipher(String),
    /// Signature algorithm of the frontend certificate, e.g. `RSA-SHA256`.
    SigAlg(String),
    /// Key algorithm of the frontend certificate, e.g. `RSA2048`.
    KeyAlg(String),
    /// A sub-type this crate does not interpret.
    Other { kind: u8, value: Vec<u8> },
}

/// The raw pieces of one TLV; `offset` is where its type byte sits in the header.
pub(super) struct Raw<'a> {
    pub kind: u8,
    pub value: &'a [u8],
    pub offset: usize,
}

/// Splits a block of TLVs; `offset` is the block's position in the header, for errors.
pub(super) fn split(
    mut block: &[u8],
    mut offset: usize,
) -> impl Iterator<Item = Result<Raw<'_>, Error>> {
    std::iter::from_fn(move || {
        if block.is_empty() {
            return None;
        }
        let Some((&[kind, hi, lo], rest)) = block.split_first_chunk::<3>() else {
            let err = Error::TlvTruncated {
                offset,
                needed: 3,
                available: block.len(),
            };
            block = &[];
            return Some(Err(err));
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let Some((value, rest)) = rest.split_at_checked(len) else {
            let err = Error::TlvTruncated {
                offset,
                needed: 3 + len,
                available: block.len(),
            };
            block = &[];
            return Some(Err(err));
        };
        let raw = Raw {
            kind,
            value,
            offset,
        };
        block = rest;
        offset += 3 + len;
        Some(Ok(raw))
    })
}

impl Tlv {
    /// Interprets one raw TLV. The CRC32C value is checked by the caller.
    pub(super) fn from_raw(raw: &Raw<'_>) -> Result<Tlv, Error> {
        let Raw { kind, value, .. } = *raw;
        Ok(match kind {
            ALPN => Tlv::Alpn(value.to_vec()),
            AUTHORITY => Tlv::Authority(text(kind, value)?),
            CRC32C if value.len() != 4 => {
                return Err(Error::Crc32cLength { len: value.len() });
            }
            CRC32C => Tlv::Crc32c,
            NOOP => Tlv::Noop {
                len: u16::try_from(value.len()).unwrap_or(u16::MAX),
            },
            UNIQUE_ID if value.len() > UNIQUE_ID_MAX_LEN => {
                return Err(Error::UniqueIdTooLong { len: value.len() });
            }
            UNIQUE_ID => Tlv::UniqueId(value.to_vec()),
            SSL => {
                let Some((&[client, v0, v1, v2, v3], subs)) = value.split_first_chunk::<5>() else {
                    return Err(Error::SslTooShort { len: value.len() });
                };
                let sub_tlvs = split(subs, raw.offset + 3 + 5)
                    .map(|sub| sub.and_then(|sub| SslTlv::from_raw(&sub)))
                    .collect::<Result<_, _>>()?;
                Tlv::Ssl {
                    client,
                    verify: u32::from_be_bytes([v0, v1, v2, v3]),
                    sub_tlvs,
                }
            }
            NETNS => Tlv::Netns(text(kind, value)?),
            kind if CUSTOM_KINDS.contains(&kind) => Tlv::Custom {
                kind,
                value: value.to_vec(),
            },
            kind => Tlv::Other {
                kind,
                value: value.to_vec(),
            },
        })
    }

    /// Appends the TLV to `out`. For [`Tlv::Crc32c`] it writes a zero value and returns
    /// the value's position in `out`, for the caller to fill once the header is complete.
    pub(super) fn encode_into(&self, out: &mut Vec<u8>) -> Result<Option<usize>, Error> {
        let (kind, value): (u8, &[u8]) = match self {
            Tlv::Alpn(value) => (ALPN, value),
            Tlv::Authority(value) => (AUTHORITY, value.as_bytes()),
            Tlv::Crc32c => (CRC32C, &[0; 4]),
            Tlv::Noop { len } => {
                push_tlv(out, NOOP, &vec![0; usize::from(*len)])?;
                return Ok(None);
            }
            Tlv::UniqueId(value) if value.len() > UNIQUE_ID_MAX_LEN => {
                return Err(Error::UniqueIdTooLong { len: value.len() });
            }
            Tlv::UniqueId(value) => (UNIQUE_ID, value),
            Tlv::Ssl {
                client,
                verify,
                sub_tlvs,
            } => {
                let mut nested = vec![*client];
                nested.extend_from_slice(&verify.to_be_bytes());
                for sub in sub_tlvs {
                    if let SslTlv::Other { kind, .. } = sub
                        && (SSL_VERSION..=SSL_KEY_ALG).contains(kind)
                    {
                        return Err(Error::ReservedKind { kind: *kind });
                    }
                    let (kind, value) = sub.parts();
                    push_tlv(&mut nested, kind, value)?;
                }
                push_tlv(out, SSL, &nested)?;
                return Ok(None);
            }
            Tlv::Netns(value) => (NETNS, value.as_bytes()),
            Tlv::Custom { kind, value } => {
                if !CUSTOM_KINDS.contains(kind) {
                    return Err(Error::CustomKindOutOfRange { kind: *kind });
                }
                (*kind, value)
            }
            Tlv::Other { kind, value } => {
                if is_interpreted(*kind) {
                    return Err(Error::ReservedKind { kind: *kind });
                }
                (*kind, value)
            }
        };
        push_tlv(out, kind, value)?;
        Ok(if kind == CRC32C {
            out.len().checked_sub(4)
        } else {
            None
        })
    }
}

impl SslTlv {
    fn from_raw(raw: &Raw<'_>) -> Result<SslTlv, Error> {
        let Raw { kind, value, .. } = *raw;
        Ok(match kind {
            SSL_VERSION => SslTlv::Version(text(kind, value)?),
            SSL_CN => SslTlv::CommonName(text(kind, value)?),
            SSL_CIPHER => SslTlv::Cipher(text(kind, value)?),
            SSL_SIG_ALG => SslTlv::SigAlg(text(kind, value)?),
            SSL_KEY_ALG => SslTlv::KeyAlg(text(kind, value)?),
            kind => SslTlv::Other {
                kind,
                value: value.to_vec(),
            },
        })
    }

    fn parts(&self) -> (u8, &[u8]) {
        match self {
            SslTlv::Version(s) => (SSL_VERSION, s.as_bytes()),
            SslTlv::CommonName(s) => (SSL_CN, s.as_bytes()),
            SslTlv::Cipher(s) => (SSL_CIPHER, s.as_bytes()),
            SslTlv::SigAlg(s) => (SSL_SIG_ALG, s.as_bytes()),
            SslTlv::KeyAlg(s) => (SSL_KEY_ALG, s.as_bytes()),
            SslTlv::Other { kind, value } => (*kind, value),
        }
    }
}

/// True for the types [`Tlv::from_raw`] turns into a dedicated variant.
fn is_interpreted(kind: u8) -> bool {
    matches!(
        kind,
        ALPN | AUTHORITY | CRC32C | NOOP | UNIQUE_ID | SSL | NETNS
    ) || CUSTOM_KINDS.contains(&kind)
}

fn text(kind: u8, value: &[u8]) -> Result<String, Error> {
    String::from_utf8(value.to_vec()).map_err(|_| Error::InvalidUtf8 { kind })
}

fn push_tlv(out: &mut Vec<u8>, kind: u8, value: &[u8]) -> Result<(), Error> {
    let len = u16::try_from(value.len()).map_err(|_| Error::TlvTooLong {
        kind,
        len: value.len(),
    })?;
    out.push(kind);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}
