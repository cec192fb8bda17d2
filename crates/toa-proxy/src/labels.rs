//! Label enums, a leaf every module may use: [`label_enum!`] declares an enum whose
//! variants are the values of one metric label.

/// An enum whose variants are the values of one label. Each variant is written once,
/// beside its label value; the macro derives `ALL` (every variant, in exposition order),
/// `name()` (the label value) and `EncodeLabelValue`, so no variant can lack a label or
/// be left out of the exposition. (prometheus-client's own derive writes the variant's
/// identifier, `LocalPorts`, where the exported values are `local_ports`.)
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $label:expr, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order the exposition lists them.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The label value.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )+
                }
            }
        }

        impl prometheus_client::encoding::EncodeLabelValue for $name {
            fn encode(
                &self,
                encoder: &mut prometheus_client::encoding::LabelValueEncoder,
            ) -> ::std::fmt::Result {
                ::std::fmt::Write::write_str(encoder, self.name())
            }
        }
    };
}
pub(crate) use label_enum;
