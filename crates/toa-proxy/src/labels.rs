//! Label enums, a leaf every module may use: [`label_enum!`] declares an enum whose
//! variants are the values of one metric label.

/// An enum whose variants are the values of one label: a `toa_common::names!` table
/// (`ALL` in exposition order, `name()` the label value) plus `EncodeLabelValue`, so no
/// variant can lack a label or be left out of the exposition. (prometheus-client's own
/// derive writes the variant's identifier, `LocalPorts`, where the exported values are
/// `local_ports`.)
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident { $($body:tt)* }
    ) => {
        toa_common::names! {
            $(#[$meta])*
            $vis enum $name { $($body)* }
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
