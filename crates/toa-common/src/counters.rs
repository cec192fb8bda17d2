//! The one way a per-CPU counter set is declared: [`counters!`] writes the
//! `#[repr(u32)]` enum (ending in `COUNT`, which sizes the kernel's array),
//! `ALL`, each counter's row name and its help line from a single table, and
//! [`CounterId`] lets user-side code (snapshots, `toa origin stats`, the
//! exporters) handle any counter set the same way.

/// A counter set declared by [`counters!`]: every counter has a fixed index
/// into its per-CPU array, a row name and a one-line help.
pub trait CounterId: Copy + Eq + core::fmt::Debug + 'static {
    /// Every counter, in index order.
    fn all() -> &'static [Self];
    /// Index into the per-CPU array.
    fn index(self) -> usize;
    /// Row name (`toa origin stats`, metric labels).
    fn name(self) -> &'static str;
    /// One line on what the counter counts (Prometheus HELP).
    fn help(self) -> &'static str;
}

/// Declares a counter set. Each entry gives the counter's index (which never
/// changes once released), its row name and its help line; the help line is
/// also the first line of the variant's doc, and any `///` lines written above
/// the entry follow it. The indexes must run 0, 1, 2, … in table order: a gap
/// or a reordering fails to compile.
///
/// ```
/// toa_common::counters! {
///     /// What a demo program did.
///     pub enum Demo {
///         /// Longer reasoning, after the help line.
///         Seen = 0 { name: "seen", help: "Packets seen." },
///         Dropped = 1 { name: "dropped", help: "Packets dropped." },
///     }
/// }
/// assert_eq!(Demo::ALL, [Demo::Seen, Demo::Dropped]);
/// assert_eq!(Demo::COUNT as usize, 2);
/// assert_eq!(Demo::Dropped.name(), "dropped");
/// ```
#[macro_export]
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub enum $set:ident {
            $(
                $(#[doc = $doc:literal])*
                $counter:ident = $index:literal { name: $name:literal, help: $help:literal $(,)? }
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $set {
            $(
                #[doc = $help]
                #[doc = ""]
                $(#[doc = $doc])*
                $counter = $index,
            )+
            /// Number of counters; sizes the per-CPU array. Not a counter.
            COUNT,
        }

        impl $set {
            /// Every counter, in index order.
            pub const ALL: [$set; $set::COUNT as usize] = [$($set::$counter),+];

            /// The row name (`toa origin stats`, metric labels).
            pub const fn name(self) -> &'static str {
                match self {
                    $($set::$counter => $name,)+
                    $set::COUNT => "count",
                }
            }

            /// One line on what the counter counts (Prometheus HELP).
            pub const fn help(self) -> &'static str {
                match self {
                    $($set::$counter => $help,)+
                    $set::COUNT => "Number of counters.",
                }
            }
        }

        // Table order is index order: `ALL[i]` is counter `i`.
        const _: () = {
            let mut i = 0;
            while i < $set::ALL.len() {
                assert!($set::ALL[i] as usize == i, "counter indexes must run 0, 1, 2, ... in table order");
                i += 1;
            }
        };

        impl $crate::names::Named for $set {
            fn all() -> &'static [Self] {
                &$set::ALL
            }
            fn name(self) -> &'static str {
                $set::name(self)
            }
        }

        impl $crate::counters::CounterId for $set {
            fn all() -> &'static [Self] {
                &$set::ALL
            }
            fn index(self) -> usize {
                self as usize
            }
            fn name(self) -> &'static str {
                $set::name(self)
            }
            fn help(self) -> &'static str {
                $set::help(self)
            }
        }
    };
}
