//! Parsing context: reports problems, looks attributes up with their positions, and records
//! which attribute values could not be read so that later cross-element checks skip them
//! instead of piling consequential errors on top.

use std::collections::HashSet;

use roxmltree::{Node, NodeType};

use super::lines::LineIndex;
use crate::{Diagnostic, Span};

/// Attributes (by element position and attribute name) whose value is missing or invalid.
#[derive(Default)]
pub(crate) struct Taint(HashSet<(Span, &'static str)>);

impl Taint {
    pub(crate) fn mark(&mut self, at: Span, attr: &'static str) {
        self.0.insert((at, attr));
    }

    pub(crate) fn is(&self, at: Span, attr: &'static str) -> bool {
        self.0.contains(&(at, attr))
    }
}

pub(crate) struct Cx<'t> {
    pub file: &'t str,
    pub lines: LineIndex<'t>,
    pub diags: Vec<Diagnostic>,
    pub taint: Taint,
    /// The SDF's directory: relative `prefill_path`s are found there.
    pub base: std::path::PathBuf,
    /// The board's generic-timer frequency: a domain schedule's `ticks` count its counter.
    pub timer_hz: u64,
}

/// An element being read, with the name used for it in messages.
#[derive(Clone, Copy)]
pub(crate) struct El<'a, 'i> {
    pub node: Node<'a, 'i>,
    pub tag: &'static str,
    pub span: Span,
}

impl<'t> Cx<'t> {
    pub(crate) fn new(file: &'t str, text: &'t str, timer_hz: u64) -> Self {
        Cx {
            timer_hz,
            file,
            lines: LineIndex::new(text),
            diags: Vec::new(),
            taint: Taint::default(),
            base: std::path::Path::new(file)
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default(),
        }
    }

    pub(crate) fn error(&mut self, at: Span, rule: &'static str, msg: impl Into<String>) {
        self.diags.push(Diagnostic::error(self.file, at, rule, msg));
    }

    fn node_span(&self, node: Node) -> Span {
        self.lines.span(node.range().start)
    }

    /// Starts reading `node` as a `tag` element, rejecting attributes outside `allowed`.
    pub(crate) fn open<'a, 'i>(
        &mut self,
        node: Node<'a, 'i>,
        tag: &'static str,
        allowed: &[&str],
    ) -> El<'a, 'i> {
        let el = El {
            node,
            tag,
            span: self.node_span(node),
        };
        for a in node.attributes() {
            if a.namespace().is_none() && allowed.contains(&a.name()) {
                continue;
            }
            let at = self.lines.span(a.range().start);
            if tag == "memory_region" && a.name() == "prefill_bootinfo" {
                self.error(
                    at,
                    "x86",
                    "`prefill_bootinfo` (Microkit's x86 boot information prefill) is not \
                     available on an AArch64 board: give the bytes as a `prefill_path` file",
                );
                continue;
            }
            let hint = if tag == "protection_domain" && a.name() == "id" {
                " (only a nested protection_domain has an `id`)".to_owned()
            } else if tag == "protection_domain" && a.name() == "pp" {
                // Microkit 1.x's PD-level `pp` said the PD can be called; Microkit 2.x refuses
                // it too and puts `pp` on the channel end of the caller instead, so moving it
                // to this PD's own end would turn the call around.
                " (Microkit 1.x's form, which Microkit 2.x refuses too: `pp=\"true\"` now goes on \
                 the channel `<end>` of the PD that calls this one, the other end of its \
                 channel)"
                    .to_owned()
            } else if allowed.is_empty() {
                " (it takes none)".to_owned()
            } else {
                format!(" (expected one of: {})", allowed.join(", "))
            };
            self.error(
                at,
                "unknown-attribute",
                format!("unknown attribute `{}` on `{tag}`{hint}", a.name()),
            );
        }
        el
    }

    /// The element children of `el` whose names are in `allowed`, paired with that name;
    /// anything else (other elements, stray text) is reported.
    pub(crate) fn children<'a, 'i>(
        &mut self,
        el: El<'a, 'i>,
        allowed: &[&'static str],
    ) -> Vec<(Node<'a, 'i>, &'static str)> {
        let mut out = Vec::new();
        for child in el.node.children() {
            match child.node_type() {
                NodeType::Element => {
                    let name = child.tag_name();
                    let known = allowed
                        .iter()
                        .find(|&&a| name.namespace().is_none() && a == name.name());
                    match known {
                        Some(&tag) => out.push((child, tag)),
                        None if name.namespace().is_none()
                            && x86_element(el.tag, name.name()).is_some() =>
                        {
                            let at = self.node_span(child);
                            let why = x86_element(el.tag, name.name()).unwrap_or_default();
                            self.error(at, "x86", why);
                        }
                        None => {
                            let at = self.node_span(child);
                            let hint = if allowed.is_empty() {
                                "it takes no child elements".to_owned()
                            } else {
                                format!("expected one of: {}", allowed.join(", "))
                            };
                            self.error(
                                at,
                                "unknown-element",
                                format!(
                                    "unknown element `{}` in `{}` ({hint})",
                                    name.name(),
                                    el.tag
                                ),
                            );
                        }
                    }
                }
                NodeType::Text if !child.text().unwrap_or("").trim().is_empty() => {
                    // Point at the first non-blank character: the text node starts after the
                    // previous tag, often on an earlier line.
                    let raw = child.text().unwrap_or("");
                    let skip = raw.len() - raw.trim_start().len();
                    let at = self.lines.span(child.range().start + skip);
                    self.error(
                        at,
                        "unexpected-text",
                        format!("unexpected text in `{}`", el.tag),
                    );
                }
                _ => {}
            }
        }
        out
    }

    /// Value and position of attribute `name`.
    pub(crate) fn attr<'a>(&self, el: El<'a, '_>, name: &str) -> Option<(&'a str, Span)> {
        el.node
            .attributes()
            .find(|a| a.namespace().is_none() && a.name() == name)
            .map(|a| (a.value(), self.lines.span(a.range().start)))
    }

    /// Where a problem with attribute `name` is reported: the attribute, else its element.
    pub(crate) fn attr_span(&self, el: El, name: &str) -> Span {
        self.attr(el, name).map_or(el.span, |(_, at)| at)
    }

    /// Reports a value-level problem of `name` and marks it unusable.
    pub(crate) fn reject(
        &mut self,
        el: El,
        name: &'static str,
        rule: &'static str,
        msg: impl Into<String>,
    ) {
        let at = self.attr_span(el, name);
        self.taint.mark(el.span, name);
        self.error(at, rule, msg);
    }

    fn missing(&mut self, el: El, name: &'static str) {
        self.taint.mark(el.span, name);
        let msg = format!("`{}` is missing required attribute `{name}`", el.tag);
        self.error(el.span, "missing-attribute", msg);
    }

    pub(crate) fn opt_str(&mut self, el: El, name: &'static str) -> Option<String> {
        let (v, _) = self.attr(el, name)?;
        if v.trim().is_empty() {
            self.reject(el, name, "bad-value", format!("`{name}` must not be empty"));
            return None;
        }
        Some(v.to_owned())
    }

    /// A required string; "" (and a tainted attribute) when missing or empty.
    pub(crate) fn req_str(&mut self, el: El, name: &'static str) -> String {
        if self.attr(el, name).is_none() {
            self.missing(el, name);
            return String::new();
        }
        self.opt_str(el, name).unwrap_or_default()
    }

    /// An optional number; `None` when absent or (reported) invalid.
    pub(crate) fn opt_num(&mut self, el: El, name: &'static str) -> Option<u64> {
        let (v, _) = self.attr(el, name)?;
        match parse_number(v) {
            Some(n) => Some(n),
            None => {
                let msg =
                    format!("`{name}`: `{v}` is not a number (decimal or 0x hex, `_` allowed)");
                self.reject(el, name, "bad-number", msg);
                None
            }
        }
    }

    pub(crate) fn req_num(&mut self, el: El, name: &'static str) -> Option<u64> {
        if self.attr(el, name).is_none() {
            self.missing(el, name);
            return None;
        }
        self.opt_num(el, name)
    }

    /// Narrows a number to 32 bits, reporting values that do not fit.
    pub(crate) fn narrow_u32(&mut self, el: El, name: &'static str, v: Option<u64>) -> Option<u32> {
        let v = v?;
        match u32::try_from(v) {
            Ok(n) => Some(n),
            Err(_) => {
                let msg = format!("`{name}`: {v} does not fit in 32 bits");
                self.reject(el, name, "bad-number", msg);
                None
            }
        }
    }

    pub(crate) fn opt_bool(&mut self, el: El, name: &'static str, default: bool) -> bool {
        match self.attr(el, name) {
            None => default,
            Some(("true", _)) => true,
            Some(("false", _)) => false,
            Some((v, _)) => {
                let msg = format!("`{name}` must be `true` or `false`, not `{v}`");
                self.reject(el, name, "bad-value", msg);
                default
            }
        }
    }
}

/// Microkit's number syntax: decimal or `0x` hex, with `_` separators anywhere after the prefix.
pub(crate) fn parse_number(s: &str) -> Option<u64> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (s, 10),
    };
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    // from_str_radix would accept a leading `+`.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(&digits, radix).ok()
}

/// Why Microkit's x86-only element `name` inside `parent` is refused, or `None` when it is
/// not one: a plain "unknown element" would list what is allowed, not say what is wrong.
fn x86_element(parent: &str, name: &str) -> Option<&'static str> {
    match (parent, name) {
        ("protection_domain", "ioport") => Some(
            "`<ioport>` (x86 I/O port range) does not exist on an AArch64 board: its devices \
             are memory-mapped; map their registers from a `memory_region` with `phys_addr`",
        ),
        // An earlier Microkit form: a PD's `iomap` names its PCI device itself.
        ("protection_domain", "iomap") => Some(
            "`<iomap>` (Microkit's IOMMU mapping for a PCI device, x86 only: Microkit refuses it \
             on AArch64 too) is not supported on an AArch64 board; remove it",
        ),
        ("system", "io_address_space") => Some(
            "`<io_address_space>` (Microkit's IOMMU address space for a PCI device, x86 only: \
             Microkit refuses it on AArch64 too) is not supported on an AArch64 board; remove it",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_number;

    #[test]
    fn numbers_follow_microkit_syntax() {
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("4096"), Some(4096));
        assert_eq!(parse_number("0x1000"), Some(0x1000));
        assert_eq!(parse_number("0x1_0000_0000"), Some(0x1_0000_0000));
        assert_eq!(parse_number("1_000"), Some(1000));
        assert_eq!(parse_number("0xFFFF_FFFF_FFFF_FFFF"), Some(u64::MAX));
        for bad in [
            "",
            "0x",
            "_",
            "+1",
            "-1",
            "1.5",
            "0x1g",
            "12a",
            " 1",
            "0x1_0000_0000_0000_0000",
            "18446744073709551616",
        ] {
            assert_eq!(parse_number(bad), None, "{bad:?}");
        }
    }
}
