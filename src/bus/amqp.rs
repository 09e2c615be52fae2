//! STUB
use async_trait::async_trait;
use super::*;
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AmqpOptions { pub exchange: String, pub dead_letter_exchange: String, pub store_queue: String, pub dead_queue: String }
pub struct AmqpBus;
impl AmqpBus { pub async fn connect(_u: &str, _o: AmqpOptions) -> Result<Self, BusError> { Ok(AmqpBus) } }
#[async_trait]
impl Bus for AmqpBus {
    async fn publish(&self, _b: Batch) -> Result<Confirm, BusError> { todo!() }
    async fn subscribe(&self, _q: &str, _p: u16) -> Result<Box<dyn Subscription>, BusError> { todo!() }
    async fn declare(&self) -> Result<(), BusError> { Ok(()) }
    fn kind(&self) -> &'static str { "amqp" }
    fn store_queue(&self) -> &str { "x" }
}
