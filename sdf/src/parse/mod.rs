//! XML → model. Checks that need only the element at hand (attribute syntax and ranges,
//! element counts, alignment of a region's own addresses) are made here; rules relating
//! several elements are in `validate`.

mod cx;
mod lines;

use roxmltree::{Document, Node};

use crate::layout::{
    MAX_DOMAINS, MAX_ID, MAX_PDS, MAX_PRIORITY, MAX_STACK_SIZE, MIN_STACK_SIZE, PAGE_SIZE_LARGE,
    PAGE_SIZE_SMALL,
};
use crate::model::*;
use crate::{Diagnostic, Span, defaults};

/// Longest schedule entry (`axolotl_abi::MAX_DOMAIN_LENGTH_US`): 56 bits of microseconds.
const MAX_DOMAIN_LENGTH_US: u64 = (1 << 56) - 1;
pub(crate) use cx::Taint;
use cx::{Cx, El, parse_number};
use lines::LineIndex;

pub(crate) struct Output {
    /// `None` when the text is not XML or its root is not `<system>`.
    pub system: Option<SystemDescription>,
    pub taint: Taint,
    pub diags: Vec<Diagnostic>,
}

const PD_ATTRS: &[&str] = &[
    "name",
    "priority",
    "budget",
    "period",
    "passive",
    "stack_size",
    "cpu",
    "smc",
    "fpu",
    "domain",
    // axolotl extensions
    "cnode_cap",
    "control",
    "restart",
    "restart_limit",
    "restart_window_ms",
    "restart_backoff_ms",
    "restart_backoff_max_ms",
    "heartbeat_ms",
    "depends_on",
    "restart_standby",
];
const CHILD_PD_ATTRS: &[&str] = &[
    "name",
    "priority",
    "budget",
    "period",
    "passive",
    "stack_size",
    "cpu",
    "smc",
    "fpu",
    "domain",
    "cnode_cap",
    "restart",
    "restart_limit",
    "restart_window_ms",
    "restart_backoff_ms",
    "restart_backoff_max_ms",
    "heartbeat_ms",
    "depends_on",
    "restart_standby",
    "id",
    "setvar_id",
];
const PD_MAP_ATTRS: &[&str] = &[
    "mr",
    "vaddr",
    "perms",
    "cached",
    "setvar_vaddr",
    "setvar_size",
    "setvar_prefill_size",
];
// Microkit patches symbols only in PD images, not in guests.
const VM_MAP_ATTRS: &[&str] = &["mr", "vaddr", "perms", "cached"];

pub(crate) fn parse(file: &str, text: &str, timer_hz: u64) -> Output {
    let mut cx = Cx::new(file, text, timer_hz);
    let system = match Document::parse(text) {
        Ok(doc) => system(&mut cx, doc.root_element()),
        Err(e) => {
            let (at, msg) = xml_error(&cx, text, &e);
            cx.error(at, "xml", msg);
            None
        }
    };
    Output {
        system,
        taint: cx.taint,
        diags: cx.diags,
    }
}

/// What roxmltree's error means for an SDF, and where: a file that is not XML at all, and one
/// cut off mid-element, get a message that says so (roxmltree places both at 1:1).
fn xml_error(cx: &Cx, text: &str, e: &roxmltree::Error) -> (Span, String) {
    let p = e.pos();
    let at = Span::new(p.row, p.col);
    match e {
        roxmltree::Error::UnknownToken(_) if !text.trim_start().starts_with('<') => (
            at,
            "not an XML file: an SDF starts with `<?xml ...?>` or `<system>`".to_owned(),
        ),
        roxmltree::Error::UnexpectedEndOfStream | roxmltree::Error::UnclosedRootNode => {
            let end = cx.lines.span(text.len());
            let msg = match open_elements(text).last() {
                Some(open) => format!(
                    "the file ends inside `<{}>` (opened at line {}): the file is cut off \
                     or a closing tag is missing",
                    open.0, open.1.line
                ),
                None => "the file ends in the middle of a tag".to_owned(),
            };
            (end, msg)
        }
        _ => {
            // roxmltree embeds the position in its message; ours goes in front.
            (at, e.to_string().replace(&format!(" at {p}"), ""))
        }
    }
}

/// The elements still open at the end of `text`, outermost first: a tag scan good enough to
/// name what a cut-off file left open (comments, CDATA and processing instructions skipped).
fn open_elements(text: &str) -> Vec<(String, Span)> {
    let lines = LineIndex::new(text);
    let mut stack: Vec<(String, Span)> = Vec::new();
    let mut rest = text;
    let mut base = 0;
    while let Some(i) = rest.find('<') {
        let tag = &rest[i..];
        let start = base + i;
        let skip_to = |end: &str| tag.find(end).map(|e| e + end.len());
        let consumed = if tag.starts_with("<!--") {
            skip_to("-->")
        } else if tag.starts_with("<![CDATA[") {
            skip_to("]]>")
        } else if tag.starts_with("<?") || tag.starts_with("<!") {
            skip_to(">")
        } else if let Some(name) = tag.strip_prefix("</") {
            let name: String = name
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '>')
                .collect();
            if let Some(pos) = stack.iter().rposition(|(n, _)| *n == name) {
                stack.truncate(pos);
            }
            skip_to(">")
        } else {
            let name: String = tag[1..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
                .collect();
            let end = skip_to(">");
            let self_closing = end.is_some_and(|e| tag[..e].ends_with("/>"));
            if !self_closing && !name.is_empty() {
                stack.push((name, lines.span(start)));
            }
            end
        };
        match consumed {
            Some(n) => {
                rest = &tag[n..];
                base = start + n;
            }
            None => break,
        }
    }
    stack
}

fn system(cx: &mut Cx, root: Node) -> Option<SystemDescription> {
    if root.tag_name().name() != "system" || root.tag_name().namespace().is_some() {
        let at = cx.lines.span(root.range().start);
        let msg = format!(
            "the root element must be `system`, not `{}`",
            root.tag_name().name()
        );
        cx.error(at, "unknown-element", msg);
        return None;
    }
    let el = cx.open(root, "system", &[]);
    let mut sd = SystemDescription {
        file: cx.file.to_owned(),
        protection_domains: Vec::new(),
        memory_regions: Vec::new(),
        channels: Vec::new(),
        domains: None,
        span: el.span,
    };
    let allowed = [
        "protection_domain",
        "memory_region",
        "channel",
        "domains",
        "domain_schedule",
    ];
    for (node, tag) in cx.children(el, &allowed) {
        match tag {
            "domains" | "domain_schedule" => {
                let parsed = if tag == "domains" {
                    domains(cx, node)
                } else {
                    legacy_domain_schedule(cx, node)
                };
                if sd.domains.is_some() {
                    let at = cx.lines.span(node.range().start);
                    cx.error(at, "domains", "more than one domain schedule");
                } else {
                    sd.domains = Some(parsed);
                }
            }
            "protection_domain" => sd.protection_domains.push(protection_domain(cx, node, 0)),
            "memory_region" => sd.memory_regions.push(memory_region(cx, node)),
            _ => sd.channels.extend(channel(cx, node)),
        }
    }
    Some(sd)
}

fn protection_domain(cx: &mut Cx, node: Node, depth: usize) -> ProtectionDomain {
    let is_child = depth > 0;
    let el = cx.open(
        node,
        "protection_domain",
        if is_child { CHILD_PD_ATTRS } else { PD_ATTRS },
    );
    let name = cx.req_str(el, "name");
    let priority = priority(cx, el);
    let (budget, period) = budget_period(cx, el);
    let passive = cx.opt_bool(el, "passive", false);
    let stack_size = stack_size(cx, el);
    let cpu = cpu(cx, el);
    let smc = cx.opt_bool(el, "smc", false);
    if smc {
        // Accepting it would let the PD start and then fault at its first SMC (an undefined
        // instruction at EL0): Microkit refuses it too on a kernel without SMC forwarding.
        let msg = "`smc=\"true\"` is not supported: the kernel forwards no SMC calls (no \
                   `seL4_ARM_SMC` capability; on QEMU virt there is no secure firmware to \
                   call), as a Microkit kernel built without SMC forwarding; remove it";
        cx.reject(el, "smc", "smc", msg);
    }
    let fpu = cx.opt_bool(el, "fpu", true);
    let cnode_cap = cx.opt_bool(el, "cnode_cap", false);
    let control = control(cx, el);
    let id = if is_child {
        small_id(cx, el, "child-id", true)
    } else {
        None
    };
    let setvar_id = cx.opt_str(el, "setvar_id");
    let domain = cx.opt_str(el, "domain");
    let resilience = resilience(cx, el);

    let mut images = Vec::new();
    let mut maps = Vec::new();
    let mut irqs = Vec::new();
    let mut setvars = Vec::new();
    let mut children = Vec::new();
    let mut vm: Option<VirtualMachine> = None;
    let allowed = [
        "program_image",
        "map",
        "irq",
        "setvar",
        "protection_domain",
        "virtual_machine",
        "cspace",
    ];
    for (node, tag) in cx.children(el, &allowed) {
        match tag {
            "cspace" => cspace(cx, node),
            "program_image" => images.push(program_image(cx, node)),
            "map" => maps.push(map(cx, node, PD_MAP_ATTRS)),
            "irq" => irqs.extend(irq(cx, node)),
            "setvar" => setvars.push(setvar(cx, node)),
            "protection_domain" if depth + 1 >= MAX_PDS => {
                // Deeper nesting cannot fit the PD limit; stop before recursion gets deep.
                let at = cx.lines.span(node.range().start);
                let msg = format!("protection domains nested more than {MAX_PDS} deep");
                cx.error(at, "pd-count", msg);
            }
            "protection_domain" => children.push(protection_domain(cx, node, depth + 1)),
            _ => {
                let parsed = virtual_machine(cx, node);
                if vm.is_some() {
                    let msg =
                        format!("protection domain `{name}` has more than one `virtual_machine`");
                    cx.error(parsed.span, "virtual-machine-count", msg);
                } else {
                    vm = Some(parsed);
                }
            }
        }
    }
    let program_image = match images.len() {
        0 => {
            cx.error(
                el.span,
                "program-image",
                format!("protection domain `{name}` has no `program_image`"),
            );
            ProgramImage {
                path: String::new(),
                path_for_symbols: None,
                span: el.span,
            }
        }
        n => {
            if n > 1 {
                let msg = format!("protection domain `{name}` has more than one `program_image`");
                cx.error(images[1].span, "program-image", msg);
            }
            images.swap_remove(0)
        }
    };
    ProtectionDomain {
        name,
        priority,
        budget,
        period,
        passive,
        stack_size,
        cpu,
        smc,
        fpu,
        cnode_cap,
        control,
        id,
        setvar_id,
        domain,
        program_image,
        maps,
        irqs,
        setvars,
        children,
        virtual_machine: vm,
        resilience,
        span: el.span,
    }
}

fn priority(cx: &mut Cx, el: El) -> u8 {
    match cx.opt_num(el, "priority") {
        None => defaults::PRIORITY,
        Some(p) => match u8::try_from(p) {
            Ok(p) if u64::from(p) <= MAX_PRIORITY => p,
            _ => {
                let msg = format!("priority {p} is out of range 0..={MAX_PRIORITY}");
                cx.reject(el, "priority", "priority-range", msg);
                defaults::PRIORITY
            }
        },
    }
}

fn budget_period(cx: &mut Cx, el: El) -> (u64, u64) {
    let budget = cx.opt_num(el, "budget").unwrap_or(defaults::BUDGET_US);
    let period = cx.opt_num(el, "period").unwrap_or(budget);
    if cx.taint.is(el.span, "budget") || cx.taint.is(el.span, "period") {
        return (budget, period);
    }
    if budget == 0 {
        cx.reject(
            el,
            "budget",
            "budget-period",
            "budget must be at least 1 us",
        );
    } else if budget > period {
        let msg = format!("budget {budget} us exceeds period {period} us");
        cx.reject(el, "budget", "budget-period", msg);
    }
    (budget, period)
}

fn stack_size(cx: &mut Cx, el: El) -> u64 {
    let Some(size) = cx.opt_num(el, "stack_size") else {
        return defaults::STACK_SIZE;
    };
    if !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&size) || !size.is_multiple_of(PAGE_SIZE_SMALL) {
        let msg = format!(
            "stack_size {size:#x} must be a multiple of {PAGE_SIZE_SMALL:#x} between \
             {MIN_STACK_SIZE:#x} and {MAX_STACK_SIZE:#x}"
        );
        cx.reject(el, "stack_size", "stack-size", msg);
        return defaults::STACK_SIZE;
    }
    size
}

fn cpu(cx: &mut Cx, el: El) -> u32 {
    let v = cx.opt_num(el, "cpu");
    cx.narrow_u32(el, "cpu", v).unwrap_or(0)
}

/// Reads a required `id` in 0..=MAX_ID (channel ends, IRQs, vCPUs, child PDs).
fn small_id(cx: &mut Cx, el: El, rule: &'static str, required: bool) -> Option<u8> {
    let v = if required {
        cx.req_num(el, "id")
    } else {
        cx.opt_num(el, "id")
    }?;
    if v > MAX_ID {
        let msg = format!("{} id {v} is out of range 0..={MAX_ID}", el.tag);
        cx.reject(el, "id", rule, msg);
        return None;
    }
    u8::try_from(v).ok()
}

/// `control="status manage vm inject"` (any subset, whitespace-separated): what the PD may
/// ask the monitor. Only top-level PDs have the attribute (a child's is an unknown one).
fn control(cx: &mut Cx, el: El) -> ControlGrant {
    let mut g = ControlGrant::default();
    let Some((v, _)) = cx.attr(el, "control") else {
        return g;
    };
    for word in v.split_whitespace() {
        match word {
            "status" => g.status = true,
            "manage" => g.manage = true,
            "vm" => g.vm = true,
            "inject" => g.inject = true,
            _ => {
                let msg = format!(
                    "`control` grants any of `status`, `manage`, `vm` and `inject`, not `{word}`"
                );
                cx.reject(el, "control", "bad-value", msg);
                return ControlGrant::default();
            }
        }
    }
    if !g.any() {
        let msg = "`control` must grant at least one of `status`, `manage`, `vm`, `inject`";
        cx.reject(el, "control", "bad-value", msg);
    }
    g
}

fn resilience(cx: &mut Cx, el: El) -> Resilience {
    let mut r = Resilience::default();
    if let Some((v, _)) = cx.attr(el, "restart") {
        match v {
            "never" => r.restart = RestartPolicy::Never,
            "always" => r.restart = RestartPolicy::Always,
            "on-failure" => r.restart = RestartPolicy::OnFailure,
            _ => {
                let msg =
                    format!("unknown restart policy `{v}` (expected never, always or on-failure)");
                cx.reject(el, "restart", "restart-policy", msg);
            }
        }
    }
    let limit = cx.opt_num(el, "restart_limit");
    r.restart_limit = cx
        .narrow_u32(el, "restart_limit", limit)
        .unwrap_or(r.restart_limit);
    r.restart_window_ms = cx
        .opt_num(el, "restart_window_ms")
        .unwrap_or(r.restart_window_ms);
    r.restart_backoff_ms = cx
        .opt_num(el, "restart_backoff_ms")
        .unwrap_or(r.restart_backoff_ms);
    r.restart_backoff_max_ms = cx
        .opt_num(el, "restart_backoff_max_ms")
        .unwrap_or(r.restart_backoff_max_ms.max(r.restart_backoff_ms));
    r.heartbeat_ms = cx.opt_num(el, "heartbeat_ms").filter(|&ms| ms != 0);
    r.standby = cx.opt_bool(el, "restart_standby", true);
    if let Some((v, _)) = cx.attr(el, "depends_on") {
        let names: Vec<&str> = v.split(',').map(str::trim).collect();
        if names.iter().any(|n| n.is_empty()) {
            let msg = format!("`depends_on` must be a comma-separated list of PD names, not `{v}`");
            cx.reject(el, "depends_on", "bad-value", msg);
        } else {
            r.depends_on = names.into_iter().map(str::to_owned).collect();
        }
    }

    if r.restart != RestartPolicy::Never {
        if r.restart_limit == 0 && !cx.taint.is(el.span, "restart_limit") {
            let msg = format!(
                "restart_limit 0 never allows a restart; use restart=\"never\" instead of \"{}\"",
                r.restart.as_str()
            );
            cx.reject(el, "restart_limit", "restart-limit", msg);
        }
        if r.restart_window_ms == 0 && !cx.taint.is(el.span, "restart_window_ms") {
            cx.reject(
                el,
                "restart_window_ms",
                "restart-limit",
                "restart_window_ms must be at least 1",
            );
        }
    }
    let backoff_known = !cx.taint.is(el.span, "restart_backoff_ms")
        && !cx.taint.is(el.span, "restart_backoff_max_ms");
    if backoff_known && r.restart_backoff_max_ms < r.restart_backoff_ms {
        let msg = format!(
            "restart_backoff_max_ms {} is below restart_backoff_ms {}",
            r.restart_backoff_max_ms, r.restart_backoff_ms
        );
        cx.reject(el, "restart_backoff_max_ms", "restart-backoff", msg);
    }
    r
}

fn program_image(cx: &mut Cx, node: Node) -> ProgramImage {
    let el = cx.open(node, "program_image", &["path", "path_for_symbols"]);
    cx.children(el, &[]);
    ProgramImage {
        path: cx.req_str(el, "path"),
        path_for_symbols: cx.opt_str(el, "path_for_symbols"),
        span: el.span,
    }
}

fn map(cx: &mut Cx, node: Node, attrs: &[&str]) -> Map {
    let el = cx.open(node, "map", attrs);
    cx.children(el, &[]);
    let mr = cx.req_str(el, "mr");
    let vaddr = cx.req_num(el, "vaddr").unwrap_or(0);
    let perms = perms(cx, el);
    let cached = cx.opt_bool(el, "cached", true);
    let setvar_vaddr = cx.opt_str(el, "setvar_vaddr");
    let setvar_size = cx.opt_str(el, "setvar_size");
    let setvar_prefill_size = cx.opt_str(el, "setvar_prefill_size");
    Map {
        mr,
        vaddr,
        perms,
        cached,
        setvar_vaddr,
        setvar_size,
        setvar_prefill_size,
        span: el.span,
    }
}

fn perms(cx: &mut Cx, el: El) -> Perms {
    let Some((v, _)) = cx.attr(el, "perms") else {
        return Perms::RW;
    };
    let mut p = Perms {
        read: false,
        write: false,
        execute: false,
    };
    for c in v.chars() {
        let bit = match c {
            'r' => &mut p.read,
            'w' => &mut p.write,
            'x' => &mut p.execute,
            _ => {
                let msg = format!("`perms` must combine r, w and x (each at most once), not `{v}`");
                cx.reject(el, "perms", "bad-value", msg);
                return Perms::RW;
            }
        };
        if *bit {
            let msg = format!("`perms` must combine r, w and x (each at most once), not `{v}`");
            cx.reject(el, "perms", "bad-value", msg);
            return Perms::RW;
        }
        *bit = true;
    }
    if v.is_empty() {
        cx.reject(el, "perms", "bad-value", "`perms` must not be empty");
        return Perms::RW;
    }
    if p.write && !p.read {
        let msg =
            format!("perms `{v}` grants write without read, which aarch64 cannot map; add `r`");
        cx.reject(el, "perms", "map-perms", msg);
    }
    p
}

/// What an `irq` in one of Microkit's x86 forms is: an I/O APIC pin or an MSI names no GIC
/// interrupt, so its other attributes mean nothing here and only this is reported.
fn x86_irq(node: Node) -> Option<&'static str> {
    let has = |names: &[&str]| {
        node.attributes()
            .any(|a| a.namespace().is_none() && names.contains(&a.name()))
    };
    if has(&["ioapic", "pin", "level", "polarity"]) {
        Some("an x86 I/O APIC interrupt (`ioapic`, `pin`, `vector`)")
    } else if has(&["pcidev", "handle"]) {
        Some("an x86 MSI (`pcidev`, `handle`, `vector`)")
    } else if has(&["vector"]) && !has(&["irq"]) {
        Some("an x86 interrupt vector")
    } else {
        None
    }
}

fn irq(cx: &mut Cx, node: Node) -> Option<Irq> {
    if let Some(kind) = x86_irq(node) {
        let at = cx.lines.span(node.range().start);
        let msg = format!(
            "`irq` names {kind}, which an AArch64 board does not have (Microkit refuses it on \
             ARM too): name a GIC interrupt with `irq=\"<INTID>\"`"
        );
        cx.error(at, "x86", msg);
        return None;
    }
    let el = cx.open(node, "irq", &["irq", "id", "trigger", "setvar_id"]);
    cx.children(el, &[]);
    let number = cx.req_num(el, "irq");
    let irq = cx.narrow_u32(el, "irq", number).unwrap_or(0);
    let id = small_id(cx, el, "id-range", true).unwrap_or(0);
    let trigger = match cx.attr(el, "trigger") {
        None | Some(("level", _)) => Trigger::Level,
        Some(("edge", _)) => Trigger::Edge,
        Some((v, _)) => {
            let msg = format!("`trigger` must be `level` or `edge`, not `{v}`");
            cx.reject(el, "trigger", "bad-value", msg);
            Trigger::Level
        }
    };
    Some(Irq {
        irq,
        id,
        trigger,
        setvar_id: cx.opt_str(el, "setvar_id"),
        span: el.span,
    })
}

fn setvar(cx: &mut Cx, node: Node) -> SetVar {
    let el = cx.open(node, "setvar", &["symbol", "region_paddr"]);
    cx.children(el, &[]);
    SetVar {
        symbol: cx.req_str(el, "symbol"),
        region_paddr: cx.req_str(el, "region_paddr"),
        span: el.span,
    }
}

fn virtual_machine(cx: &mut Cx, node: Node) -> VirtualMachine {
    let el = cx.open(
        node,
        "virtual_machine",
        &["name", "priority", "budget", "period"],
    );
    let name = cx.req_str(el, "name");
    let priority = priority(cx, el);
    let (budget, period) = budget_period(cx, el);
    let mut vcpus = Vec::new();
    let mut maps = Vec::new();
    for (node, tag) in cx.children(el, &["vcpu", "map"]) {
        match tag {
            "vcpu" => vcpus.extend(vcpu(cx, node)),
            _ => maps.push(map(cx, node, VM_MAP_ATTRS)),
        }
    }
    let has_vcpu = el.node.children().any(|c| c.has_tag_name("vcpu"));
    if !has_vcpu {
        cx.error(
            el.span,
            "vcpu",
            format!("virtual machine `{name}` has no `vcpu`"),
        );
    }
    VirtualMachine {
        name,
        priority,
        budget,
        period,
        vcpus,
        maps,
        span: el.span,
    }
}

fn vcpu(cx: &mut Cx, node: Node) -> Option<Vcpu> {
    let el = cx.open(node, "vcpu", &["id", "cpu", "setvar_id"]);
    cx.children(el, &[]);
    let id = small_id(cx, el, "vcpu", true);
    let cpu = cpu(cx, el);
    Some(Vcpu {
        id: id?,
        cpu,
        setvar_id: cx.opt_str(el, "setvar_id"),
        span: el.span,
    })
}

fn memory_region(cx: &mut Cx, node: Node) -> MemoryRegion {
    let el = cx.open(
        node,
        "memory_region",
        &["name", "size", "page_size", "phys_addr", "prefill_path"],
    );
    cx.children(el, &[]);
    let name = cx.req_str(el, "name");
    let page_size = match cx.opt_num(el, "page_size") {
        None => defaults::PAGE_SIZE,
        Some(ps @ (PAGE_SIZE_SMALL | PAGE_SIZE_LARGE)) => ps,
        Some(ps) => {
            let msg =
                format!("page_size {ps:#x} is not {PAGE_SIZE_SMALL:#x} or {PAGE_SIZE_LARGE:#x}");
            cx.reject(el, "page_size", "page-size", msg);
            defaults::PAGE_SIZE
        }
    };
    let page_size_known = !cx.taint.is(el.span, "page_size");
    let prefill = prefill(cx, el);
    // Microkit 2.2: a prefilled region's size defaults to the file's, rounded up to pages.
    let size = match (cx.attr(el, "size"), &prefill) {
        (Some(_), _) => cx.opt_num(el, "size").unwrap_or(0),
        (None, Some(p)) => p.len.div_ceil(page_size).saturating_mul(page_size),
        (None, None) => {
            cx.taint.mark(el.span, "size");
            // A prefill file that could not be read was reported; its size is unknown. So was
            // an x86 `prefill_bootinfo`, which gives the size in Microkit.
            if cx.attr(el, "prefill_path").is_none() && cx.attr(el, "prefill_bootinfo").is_none() {
                cx.error(
                    el.span,
                    "missing-attribute",
                    "`memory_region` is missing required attribute `size` (required unless \
                     `prefill_path` gives it)",
                );
            }
            0
        }
    };
    if !cx.taint.is(el.span, "size") {
        if size == 0 {
            cx.reject(
                el,
                "size",
                "region-size",
                "memory region size must not be 0",
            );
        } else if page_size_known && !size.is_multiple_of(page_size) {
            let msg = format!("size {size:#x} is not a multiple of the page size {page_size:#x}");
            cx.reject(el, "size", "region-size", msg);
        } else if let Some(p) = prefill.as_ref().filter(|p| p.len > size) {
            let msg = format!(
                "prefill file `{}` ({:#x} bytes) is larger than the region's size {size:#x}",
                p.path, p.len
            );
            cx.reject(el, "size", "prefill", msg);
        }
    }
    let phys_addr = cx.opt_num(el, "phys_addr");
    if let Some(pa) = phys_addr
        && page_size_known
        && !pa.is_multiple_of(page_size)
    {
        let msg = format!("phys_addr {pa:#x} is not aligned to the page size {page_size:#x}");
        cx.reject(el, "phys_addr", "phys-align", msg);
    }
    if prefill.is_some() && phys_addr.is_some() {
        // The root task never writes memory at a fixed address on a plan's say-so: it may
        // be device registers.
        cx.reject(
            el,
            "prefill_path",
            "prefill",
            "a region with `phys_addr` cannot be prefilled: the root task does not write \
             memory at fixed addresses, which may be device registers",
        );
    }
    MemoryRegion {
        name,
        size,
        page_size,
        phys_addr,
        prefill,
        span: el.span,
    }
}

/// `prefill_path`, found as program images are: as written if absolute, else next to the
/// SDF (which stands for Microkit's search paths). Only its length is kept: the image
/// builder reads the bytes again from `Prefill::file` when it packs them.
fn prefill(cx: &mut Cx, el: El) -> Option<Prefill> {
    let path = cx.opt_str(el, "prefill_path")?;
    let file = cx.base.join(&path);
    let reason = match std::fs::metadata(&file) {
        Ok(m) if m.is_file() && m.len() > 0 => {
            return Some(Prefill {
                path,
                file: file.display().to_string(),
                len: m.len(),
            });
        }
        Ok(m) if m.is_file() => "is empty".to_owned(),
        Ok(_) => "is not a file".to_owned(),
        Err(e) => format!("cannot be read: {e}"),
    };
    let msg = format!(
        "prefill file `{path}` ({}) {reason}; a relative path is found next to the SDF",
        file.display()
    );
    cx.reject(el, "prefill_path", "prefill", msg);
    None
}

/// Microkit's `<domains>`: `domain` elements (`name`, optional `id`: the smallest unused
/// one when absent) and one `domain_schedule` of `schedule_entry` elements (`domain`,
/// `duration` with a unit), closed by an optional `schedule_end_marker`.
fn domains(cx: &mut Cx, node: Node) -> Domains {
    let el = cx.open(node, "domains", &[]);
    let mut named: Vec<(String, Option<u64>, Span)> = Vec::new();
    let mut out = Domains {
        domains: Vec::new(),
        schedule: Vec::new(),
        start_index: 0,
        index_shift: 0,
        span: el.span,
    };
    let mut schedules = 0;
    for (child, tag) in cx.children(el, &["domain", "domain_schedule"]) {
        if tag == "domain" {
            let d = cx.open(child, "domain", &["name", "id"]);
            cx.children(d, &[]);
            let id = cx.opt_num(d, "id");
            if let Some(id) = id
                && id >= MAX_DOMAINS
            {
                let msg = format!("domain id {id} is out of range 0..{MAX_DOMAINS}");
                cx.reject(d, "id", "domains", msg);
            }
            named.push((cx.req_str(d, "name"), id, d.span));
            continue;
        }
        schedules += 1;
        let s = cx.open(child, "domain_schedule", &["start_index", "index_shift"]);
        if schedules > 1 {
            cx.error(
                s.span,
                "domains",
                "more than one `domain_schedule` in `domains`",
            );
        }
        out.start_index = cx.opt_num(s, "start_index").unwrap_or(0);
        out.index_shift = cx.opt_num(s, "index_shift").unwrap_or(0);
        let mut ended = false;
        for (e, etag) in cx.children(s, &["schedule_entry", "schedule_end_marker"]) {
            let en = cx.open(
                e,
                etag,
                if etag == "schedule_entry" {
                    &["domain", "duration"]
                } else {
                    &[]
                },
            );
            cx.children(en, &[]);
            if etag == "schedule_end_marker" {
                ended = true;
                continue;
            }
            if ended {
                cx.error(
                    en.span,
                    "domains",
                    "a `schedule_entry` after `schedule_end_marker`",
                );
            }
            let domain = cx.req_str(en, "domain");
            let length_us = duration(cx, en).unwrap_or(1);
            out.schedule.push(ScheduleEntry {
                domain,
                length_us,
                span: en.span,
            });
        }
    }
    if schedules == 0 {
        cx.error(
            el.span,
            "domains",
            "`domains` without a `domain_schedule`: no domain would ever run",
        );
    }
    // Explicit ids first, then the smallest unused one for each of the others, as Microkit.
    let mut used: Vec<u64> = named.iter().filter_map(|(_, id, _)| *id).collect();
    for (name, given, span) in named {
        let id = given.unwrap_or_else(|| {
            let free = (0..).find(|i| !used.contains(i)).unwrap_or(0);
            used.push(free);
            free
        });
        // An explicit id out of range was reported with its attribute.
        if given.is_none() && id >= MAX_DOMAINS {
            let msg = format!(
                "domain `{name}` gets id {id}: more than {MAX_DOMAINS} domains, the kernel's \
                 limit"
            );
            cx.error(span, "domains", msg);
        }
        out.domains.push(Domain { name, id, span });
    }
    out
}

/// `duration="6000 us"`: a number and a unit, in microseconds. Microkit's units are `us` and
/// `ticks`, seL4 MCS's unit, which Microkit hands the kernel as they are: ticks of the board's
/// generic-timer counter (62.5 MHz on QEMU virt), converted here and rounded up. `ns`, `ms`
/// and `s` are axolotl's.
fn duration(cx: &mut Cx, el: El) -> Option<u64> {
    const UNITS: &str = "(`ns`, `us`, `ms`, `s` or `ticks`)";
    let (v, _) = cx.attr(el, "duration")?;
    let v = v.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_hexdigit() || c == '_' || c == 'x'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    // Microseconds from `n` of the unit, rounded up; `None` on overflow.
    let us = |n: u64| -> Option<u64> {
        match unit.trim() {
            "ns" => Some(n.div_ceil(1000)),
            "us" => Some(n),
            "ms" => n.checked_mul(1000),
            "s" => n.checked_mul(1_000_000),
            "ticks" if cx.timer_hz > 0 => {
                let us = (u128::from(n) * 1_000_000).div_ceil(u128::from(cx.timer_hz));
                u64::try_from(us).ok()
            }
            _ => None,
        }
    };
    let known = matches!(unit.trim(), "ns" | "us" | "ms" | "s" | "ticks");
    let Some(n) = parse_number(num.trim()).filter(|_| known) else {
        let msg = format!("`duration`: `{v}` is not a number with a unit {UNITS}");
        cx.reject(el, "duration", "domains", msg);
        return None;
    };
    let us = us(n).unwrap_or(u64::MAX);
    if us == 0 || us > MAX_DOMAIN_LENGTH_US {
        let msg = format!("`duration`: {v} is out of range (1 us to {MAX_DOMAIN_LENGTH_US} us)");
        cx.reject(el, "duration", "domains", msg);
        return None;
    }
    Some(us)
}

/// The older spelling, a top-level `<domain_schedule>` of `domain` elements with `name`
/// and `length` (microseconds, seL4 MCS's unit), each distinct name a domain numbered in
/// order of appearance; `domain_start index` / `start_index` and `domain_idx_shift shift`
/// / `index_shift` as in `domains`.
fn legacy_domain_schedule(cx: &mut Cx, node: Node) -> Domains {
    let el = cx.open(node, "domain_schedule", &["start_index", "index_shift"]);
    let mut out = Domains {
        domains: Vec::new(),
        schedule: Vec::new(),
        start_index: cx.opt_num(el, "start_index").unwrap_or(0),
        index_shift: cx.opt_num(el, "index_shift").unwrap_or(0),
        span: el.span,
    };
    let (mut starts, mut shifts) = (0, 0);
    for (child, tag) in cx.children(el, &["domain", "domain_start", "domain_idx_shift"]) {
        match tag {
            "domain_start" => {
                let s = cx.open(child, tag, &["index"]);
                cx.children(s, &[]);
                starts += 1;
                if starts > 1 {
                    cx.error(s.span, "domains", "more than one `domain_start`");
                }
                out.start_index = cx.req_num(s, "index").unwrap_or(0);
            }
            "domain_idx_shift" => {
                let s = cx.open(child, tag, &["shift"]);
                cx.children(s, &[]);
                shifts += 1;
                if shifts > 1 {
                    cx.error(s.span, "domains", "more than one `domain_idx_shift`");
                }
                out.index_shift = cx.req_num(s, "shift").unwrap_or(0);
            }
            _ => {
                let d = cx.open(child, "domain", &["name", "length"]);
                cx.children(d, &[]);
                let name = cx.req_str(d, "name");
                let length_us = match cx.req_num(d, "length") {
                    Some(0) => {
                        cx.reject(d, "length", "domains", "`length` must be at least 1 (us)");
                        1
                    }
                    Some(n) if n > MAX_DOMAIN_LENGTH_US => {
                        let msg = format!("`length` {n} is above {MAX_DOMAIN_LENGTH_US} us");
                        cx.reject(d, "length", "domains", msg);
                        1
                    }
                    Some(n) => n,
                    None => 1,
                };
                if !name.is_empty() && out.domains.iter().all(|x| x.name != name) {
                    let id = out.domains.len() as u64;
                    if id == MAX_DOMAINS {
                        let msg = format!(
                            "domain `{name}` is domain number {}: the kernel has {MAX_DOMAINS}",
                            id + 1
                        );
                        cx.error(d.span, "domains", msg);
                    }
                    out.domains.push(Domain {
                        name: name.clone(),
                        id,
                        span: d.span,
                    });
                }
                out.schedule.push(ScheduleEntry {
                    domain: name,
                    length_us,
                    span: d.span,
                });
            }
        }
    }
    out
}

/// Microkit 2.3's cap sharing: refused, each kind with the reason it cannot be honoured.
fn cspace(cx: &mut Cx, node: Node) {
    let el = cx.open(node, "cspace", &[]);
    let kinds = ["cap_tcb", "cap_sc", "cap_vspace", "cap_smc", "cap_cspace"];
    for (child, tag) in cx.children(el, &kinds) {
        let at = cx.lines.span(child.range().start);
        let why = match tag {
            "cap_cspace" => {
                "a restart rebuilds a PD's CSpace from its plan, so a CNode cap another PD \
                 holds would name a dead CSpace, and there are no shared `cnode`s"
            }
            "cap_smc" => {
                "the kernel forwards no SMC calls (QEMU virt has no secure firmware: SMC is \
                 disabled in SCR_EL3), so there is no SMC capability to badge with a function id"
            }
            "cap_sc" => {
                "the kernel has no scheduling contexts (MCS): `budget` and `period` are not \
                 enforced, so there is no SC to share"
            }
            "cap_vspace" => {
                "a restart moves a PD to a fresh VSpace (its standby incarnation), so a shared \
                 VSpace cap would name a dead address space"
            }
            _ => {
                "the monitor alone may stop, resume and rebuild a PD's TCB (a parent holds its \
                 children's through `id`); another PD holding it could undo a restart"
            }
        };
        // `cap_smc` and `cap_cspace` came after 2.3, in Microkit's mainline.
        let since = if matches!(tag, "cap_smc" | "cap_cspace") {
            ""
        } else {
            " 2.3"
        };
        let msg = format!(
            "`<{tag}>` (Microkit{since} cap sharing) is not supported: {why}; remove the \
             `cspace` element"
        );
        cx.error(at, "cspace", msg);
    }
}

fn channel(cx: &mut Cx, node: Node) -> Option<Channel> {
    let el = cx.open(node, "channel", &[]);
    let ends: Vec<End> = cx
        .children(el, &["end"])
        .into_iter()
        .map(|(n, _)| end(cx, n))
        .collect();
    match <[End; 2]>::try_from(ends) {
        Ok(ends) => Some(Channel {
            ends,
            span: el.span,
        }),
        Err(ends) => {
            let msg = format!(
                "channel has {} `end` elements; a channel has exactly 2",
                ends.len()
            );
            cx.error(el.span, "channel-ends", msg);
            None
        }
    }
}

fn end(cx: &mut Cx, node: Node) -> End {
    let el = cx.open(node, "end", &["pd", "id", "pp", "notify", "setvar_id"]);
    cx.children(el, &[]);
    End {
        pd: cx.req_str(el, "pd"),
        id: small_id(cx, el, "id-range", true).unwrap_or(0),
        pp: cx.opt_bool(el, "pp", false),
        notify: cx.opt_bool(el, "notify", true),
        setvar_id: cx.opt_str(el, "setvar_id"),
        span: el.span,
    }
}
