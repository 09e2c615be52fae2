//! STUB
use async_trait::async_trait;
use super::*;
pub struct MemoryBus;
impl MemoryBus { pub fn new(_c: usize) -> Self { MemoryBus } }
#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, _b: Batch) -> Result<Confirm, BusError> { todo!() }
    async fn subscribe(&self, _q: &str, _p: u16) -> Result<Box<dyn Subscription>, BusError> { todo!() }
    async fn declare(&self) -> Result<(), BusError> { Ok(()) }
    fn kind(&self) -> &'static str { "memory" }
    fn store_queue(&self) -> &str { "x" }
}
