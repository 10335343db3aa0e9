//! Configuration sections that document themselves: [`documented!`](crate::documented) declares a
//! raw section struct and records each key's name, type and doc comment in [`Documented::KEYS`],
//! from which the configuration reference (`docs/reference/configuration.md`) is generated.

/// One key of a configuration section, as its definition documents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    pub name: &'static str,
    /// The Rust type as written, e.g. `Option<PromDuration>`.
    pub ty: &'static str,
    /// The field's doc comment, lines joined by newlines.
    pub doc: &'static str,
}

/// A section whose keys are documented.
pub trait Documented {
    const KEYS: &'static [KeyDoc];
}

/// Declares a struct (attributes, visibility and fields as written) and implements
/// [`Documented`] for it from the fields' doc comments.
#[macro_export]
macro_rules! documented {
    ($(#[$($sattr:tt)*])* $svis:vis struct $name:ident { $($(#[$($fattr:tt)*])* $fvis:vis $field:ident: $ty:ty),* $(,)? }) => {
        $(#[$($sattr)*])* $svis struct $name { $($(#[$($fattr)*])* $fvis $field: $ty,)* }

        impl $crate::config::doc::Documented for $name {
            const KEYS: &'static [$crate::config::doc::KeyDoc] = &[$($crate::config::doc::KeyDoc {
                name: stringify!($field),
                ty: stringify!($ty),
                doc: $crate::__doc_text!([] $([$($fattr)*])*),
            },)*];
        }
    };
}

/// The doc attributes of a list of attributes, concatenated (one line each).
#[doc(hidden)]
#[macro_export]
macro_rules! __doc_text {
    ([$($acc:literal)*]) => { concat!($($acc, "\n",)*) };
    ([$($acc:literal)*] [doc = $d:literal] $($rest:tt)*) => { $crate::__doc_text!([$($acc)* $d] $($rest)*) };
    ([$($acc:literal)*] [$($other:tt)*] $($rest:tt)*) => { $crate::__doc_text!([$($acc)*] $($rest)*) };
}

/// A doc text as one line: lines trimmed and joined by spaces.
pub fn one_line(doc: &str) -> String {
    doc.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::documented! {
        /// A section.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Example {
            /// First line
            /// and second.
            #[serde(default)]
            pub alpha: Option<u32>,
            #[serde(default)]
            pub undocumented: Vec<String>,
        }
    }

    #[test]
    fn keys_carry_name_type_and_doc() {
        assert_eq!(Example::KEYS.len(), 2);
        assert_eq!(Example::KEYS[0].name, "alpha");
        assert_eq!(Example::KEYS[0].ty.replace(' ', ""), "Option<u32>");
        assert_eq!(one_line(Example::KEYS[0].doc), "First line and second.");
        assert_eq!(Example::KEYS[1].doc, "");
        let example = Example::default();
        assert!(example.alpha.is_none() && example.undocumented.is_empty());
    }
}
