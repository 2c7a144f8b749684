//! Passive server: answers the client's protected calls (the square of MR0) and tells the
//! logger about each one.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod pd {
    use axolotl_pd::{Channel, Handler, MessageInfo, get_mr, println, set_mr};

    const CLIENT: Channel = Channel::new(0);
    const LOGGER: Channel = Channel::new(1);

    struct Server {
        served: u64,
    }

    impl Handler for Server {
        fn init(&mut self) {
            println!("hello_server: ready");
        }

        fn notified(&mut self, ch: Channel) {
            println!(
                "hello_server: unexpected notification on channel {}",
                ch.id()
            );
        }

        fn protected(&mut self, ch: Channel, msg: MessageInfo) -> MessageInfo {
            if ch != CLIENT || msg.length() != 1 {
                return MessageInfo::new(1, 0, 0, 0);
            }
            let n = get_mr(0);
            self.served += 1;
            println!(
                "hello_server: call {} from hello_client: {n}^2",
                self.served
            );
            set_mr(0, n.wrapping_mul(n));
            LOGGER.notify();
            MessageInfo::new(0, 0, 0, 1)
        }
    }

    axolotl_pd::protection_domain!(Server { served: 0 });
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "a protection domain: build it into a system with `cargo xtask build --system systems/hello.system`"
    );
}
