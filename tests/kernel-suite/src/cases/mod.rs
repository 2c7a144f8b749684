//! The test cases, in the order they run: object creation first, then what builds on it.

mod cnode;
mod domains;
mod errors;
mod faults;
mod hostile_irq;
mod hostile_ptrs;
mod hostile_vm;
mod ipc;
mod irq;
mod mem;
mod rejections;
mod sched;
mod stress;
mod tcb;
mod timer;
mod untyped;
mod vcpu;
mod vm;

use crate::harness::TestFn;

pub const ALL: &[(&str, TestFn)] = &[
    ("mem_memcpy_alignments", mem::copy),
    ("mem_memmove_overlaps", mem::move_),
    ("mem_memset_alignments", mem::set),
    ("mem_memcmp_alignments", mem::compare),
    ("untyped_retype_each_type", untyped::each_type),
    ("untyped_retype_vcpu", untyped::vcpu),
    ("untyped_retype_many_objects", untyped::many_objects),
    ("untyped_retype_invalid_type", untyped::invalid_type),
    ("untyped_retype_size_range", untyped::size_range),
    ("untyped_retype_window_range", untyped::window_range),
    ("untyped_retype_alignment", untyped::alignment),
    (
        "untyped_retype_not_enough_memory",
        untyped::not_enough_memory,
    ),
    ("untyped_retype_delete_first", untyped::delete_first),
    (
        "untyped_watermark_reset_after_revoke",
        untyped::watermark_reset,
    ),
    (
        "untyped_copy_with_children_revoke_first",
        untyped::revoke_first,
    ),
    ("untyped_device_only_frames", untyped::device_only_frames),
    ("untyped_retype_into_child_cnode", untyped::into_child_cnode),
    ("cnode_copy", cnode::copy),
    ("cnode_mint_badge", cnode::mint_badge),
    ("cnode_mint_rebadge_illegal", cnode::mint_rebadge),
    ("cnode_mint_reduced_rights", cnode::mint_reduced_rights),
    ("cnode_move", cnode::move_),
    ("cnode_mutate", cnode::mutate),
    ("cnode_rotate", cnode::rotate),
    ("cnode_delete", cnode::delete),
    ("cnode_revoke_derived_tree", cnode::revoke_tree),
    ("cnode_two_level_addressing", cnode::two_level),
    (
        "cnode_delete_revoke_preemptible",
        cnode::delete_revoke_preemptible,
    ),
    ("errors_invalid_capability", errors::invalid_capability),
    ("errors_illegal_operation", errors::illegal_operation),
    ("errors_range_depth", errors::range_depth),
    ("errors_failed_lookup", errors::failed_lookup),
    ("errors_truncated_message", errors::truncated_message),
    ("errors_delete_first_on_copy", errors::delete_first),
    ("rejections_truncated", rejections::truncated),
    ("rejections_cnode", rejections::cnode),
    ("rejections_tcb", rejections::tcb),
    (
        "rejections_tcb_configure_refused_whole",
        rejections::tcb_configure_refused_whole,
    ),
    ("rejections_vm", rejections::vm),
    ("rejections_vcpu_irq", rejections::vcpu_irq),
    // Early, so that every case after it checks the kernel still works.
    ("stress_random_invocations", stress::random_invocations),
    ("tcb_thread_in_shared_vspace", tcb::shared_vspace),
    ("tcb_read_write_registers", tcb::registers),
    ("tcb_suspend_resume", tcb::suspend_resume),
    ("tcb_priority_and_mcp", tcb::priority_mcp),
    ("tcb_set_space_and_ipc_buffer", tcb::set_space_ipc_buffer),
    ("ipc_send_recv", ipc::send_recv),
    ("ipc_call_reply", ipc::call_reply),
    ("ipc_suspend_aborts_caller", ipc::suspend_aborts_caller),
    ("ipc_reply_recv_loop", ipc::reply_recv_loop),
    ("ipc_badges_delivered", ipc::badges),
    ("ipc_long_message", ipc::long_message),
    ("ipc_cap_transfer_grant", ipc::cap_transfer),
    ("ipc_cap_transfer_without_grant", ipc::cap_transfer_no_grant),
    (
        "ipc_cap_transfer_without_receive_path",
        ipc::cap_transfer_without_receive_path,
    ),
    ("ipc_nb_send_without_receiver", ipc::nb_send_dropped),
    ("ntfn_signal_bits_or", ipc::ntfn_or),
    ("ntfn_wait_blocks", ipc::ntfn_wait),
    ("ntfn_poll_empty", ipc::ntfn_poll),
    (
        "ntfn_zero_badge_signal_pending",
        ipc::ntfn_zero_badge_pending,
    ),
    ("ntfn_bound_wakes_endpoint_receiver", ipc::bound_ntfn),
    ("sched_signal_preempts", sched::preempt),
    ("sched_round_robin_yield", sched::round_robin),
    ("sched_timeslice", sched::timeslice),
    ("sched_cpu_time", sched::cpu_time),
    ("domain_other_domain_waits", domains::other_domain_waits),
    ("domain_bad_arguments", domains::bad_arguments),
    ("fault_vm_read", faults::vm_read),
    ("fault_vm_write", faults::vm_write),
    ("fault_user_exception", faults::user_exception),
    ("fault_unknown_syscall", faults::unknown_syscall),
    ("fault_cap_fault", faults::cap_fault),
    ("cancel_ipc_on_endpoint_delete", faults::cancel_on_delete),
    ("cancel_ipc_on_suspend", faults::cancel_on_suspend),
    ("vm_frame_map_unmap", vm::frame_map_unmap),
    ("vm_page_table_map_unmap", vm::page_table),
    ("vm_map_alignment_error", vm::alignment),
    ("vm_large_frame", vm::large_frame),
    ("vm_asid_pool_assign", vm::asid),
    ("vm_cache_maintenance", vm::cache_maintenance),
    (
        "hostile_vm_unmapped_table_keeps_no_entries",
        hostile_vm::unmapped_table_keeps_no_entries,
    ),
    (
        "hostile_vm_table_unmap_needs_final_cap",
        hostile_vm::table_unmap_needs_final_cap,
    ),
    (
        "hostile_vm_vspace_deleted_under_table",
        hostile_vm::vspace_deleted_under_table,
    ),
    ("irq_control_errors", irq::control_errors),
    ("irq_rtc_alarm_delivery", irq::rtc_alarm),
    (
        "hostile_irq_ntfn_deleted_memory_retyped",
        hostile_irq::ntfn_deleted_memory_retyped,
    ),
    (
        "hostile_irq_handler_deleted_or_cleared_unbinds",
        hostile_irq::handler_deleted_or_cleared_unbinds,
    ),
    (
        "hostile_irq_console_uart_refused",
        hostile_irq::console_uart_refused,
    ),
    (
        "timer_el0_without_grant_faults",
        timer::el0_without_grant_faults,
    ),
    (
        "timer_el0_grant_delivers_ppi30",
        timer::el0_grant_delivers_ppi,
    ),
    ("timer_kernel_timeout", timer::kernel_timeout),
    ("vcpu_gic_pages_kernel_only", vcpu::gic_pages_kernel_only),
    ("vcpu_invocations", vcpu::invocations),
    ("vcpu_guest_mmio_widths", vcpu::mmio),
    ("vcpu_guest_hvc_smc_wfi_sysreg", vcpu::traps),
    ("vcpu_guest_refused_abort", vcpu::refused),
    ("vcpu_guest_abort_injected", vcpu::abort_injected),
    ("vcpu_guest_hostile_exits", vcpu::hostile),
    ("vcpu_guest_virtual_timer", vcpu::virtual_timer),
    (
        "vcpu_wfi_waits_for_the_timer",
        vcpu::wfi_waits_for_the_timer,
    ),
    (
        "vcpu_wfi_waits_for_an_injection",
        vcpu::wfi_waits_for_an_injection,
    ),
    ("vcpu_two_guests_switch_el1_state", vcpu::two_guests),
    ("vcpu_guest_preempted_by_tick", vcpu::preempted),
    ("vcpu_delete_while_guest_waits", vcpu::delete_while_waiting),
    (
        "vcpu_exit_redelivered_after_vmm_dies",
        vcpu::exit_redelivered_after_vmm_dies,
    ),
    (
        "vcpu_event_redelivered_after_vmm_dies",
        vcpu::event_redelivered_after_vmm_dies,
    ),
    (
        "vcpu_list_registers_read_and_cleared",
        vcpu::list_registers_read_and_cleared,
    ),
    (
        "hostile_ptrs_asid_freed_with_vspace",
        hostile_ptrs::asid_freed_with_vspace,
    ),
    (
        "hostile_ptrs_pool_deleted_thread_stops",
        hostile_ptrs::pool_deleted_thread_stops,
    ),
    (
        "hostile_ptrs_ipc_buffer_frame_deleted",
        hostile_ptrs::ipc_buffer_frame_deleted,
    ),
    (
        "hostile_ptrs_bound_thread_deleted",
        hostile_ptrs::bound_thread_deleted,
    ),
    (
        "hostile_ptrs_queued_thread_deleted",
        hostile_ptrs::queued_thread_deleted,
    ),
    (
        "hostile_ptrs_waited_object_deleted",
        hostile_ptrs::waited_object_deleted,
    ),
    (
        "hostile_ptrs_reply_holder_deleted",
        hostile_ptrs::reply_holder_deleted,
    ),
    (
        "hostile_ptrs_reply_caller_deleted",
        hostile_ptrs::reply_caller_deleted,
    ),
    (
        "hostile_ptrs_vcpu_deleted_under_thread",
        hostile_ptrs::vcpu_deleted_under_thread,
    ),
    (
        "hostile_ptrs_tcb_deleted_under_vcpu",
        hostile_ptrs::tcb_deleted_under_vcpu,
    ),
    (
        "hostile_ptrs_thread_deletes_itself",
        hostile_ptrs::thread_deletes_itself,
    ),
    (
        "hostile_ptrs_tcb_configures_itself",
        hostile_ptrs::tcb_configures_itself,
    ),
    (
        "hostile_ptrs_tcb_configures_itself_last_tcb_cap",
        hostile_ptrs::tcb_configures_itself_last_tcb_cap,
    ),
    (
        "hostile_ptrs_tcb_configures_itself_last_tcb_cap_preempted",
        hostile_ptrs::tcb_configures_itself_last_tcb_cap_preempted,
    ),
    (
        "hostile_ptrs_tcb_configures_itself_then_last_tcb_cap_goes",
        hostile_ptrs::tcb_configures_itself_then_last_tcb_cap_goes,
    ),
];
