//! Push delivery, in no dialect: the HTTP notifier ([`deliver`]), the outbox worker with
//! retries and dead letters, which has each push rendered and judged by its
//! subscription's dialect ([`outbox`]), and the callback URL address check made at
//! subscribe time and at delivery ([`callback`]).

pub mod callback;
pub mod deliver;
pub mod outbox;

pub use callback::{callback_allowed, CallbackError};
pub use deliver::{HttpNotifier, PUSH_ID_HEADER};
pub use outbox::{DeliveryReport, PushConfig, PushWorker, RetryPolicy, VerdictObserver};
