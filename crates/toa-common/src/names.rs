//! The one way an enum is mapped to and from its names: [`names!`] writes the
//! enum, `ALL`, `name()` and `from_name()` from a single table of variants and
//! names, so a variant cannot lack a name or be left out of a listing.
//! [`counters!`](crate::counters!) builds counter sets on the same [`Named`] trait.

/// An enum declared by [`names!`] (or [`counters!`](crate::counters!)): each
/// value has one name, and `all()` lists every value.
pub trait Named: Copy + Eq + core::fmt::Debug + 'static {
    /// Every value, in table order.
    fn all() -> &'static [Self];
    /// The value's name (config value, metric label, row name).
    fn name(self) -> &'static str;
    /// The value named `name` exactly, if any.
    fn from_name(name: &str) -> Option<Self> {
        Self::all().iter().copied().find(|v| v.name() == name)
    }
}

/// Declares an enum with one name per variant. The macro derives `Clone`,
/// `Copy`, `Debug`, `PartialEq`, `Eq` and `Hash`, and writes `ALL` (every
/// variant, in table order), `name()`, `from_name()` and [`Named`].
///
/// ```
/// toa_common::names! {
///     /// How a demo picks.
///     pub enum Pick {
///         First => "first",
///         /// Docs on a variant stay with it.
///         Last => "last",
///     }
/// }
/// assert_eq!(Pick::ALL, [Pick::First, Pick::Last]);
/// assert_eq!(Pick::Last.name(), "last");
/// assert_eq!(Pick::from_name("first"), Some(Pick::First));
/// assert_eq!(Pick::from_name("First"), None);
/// ```
#[macro_export]
macro_rules! names {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $label:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every value, in table order.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The value's name.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )+
                }
            }

            /// The value named `name` exactly, if any.
            pub fn from_name(name: &str) -> Option<$name> {
                <$name as $crate::names::Named>::from_name(name)
            }
        }

        impl $crate::names::Named for $name {
            fn all() -> &'static [Self] {
                &$name::ALL
            }
            fn name(self) -> &'static str {
                $name::name(self)
            }
        }
    };
}
