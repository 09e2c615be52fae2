//! STUB
use super::*;
pub struct PgStore;
impl PgStore { pub async fn connect(_u: &str, _p: Precedence, _n: u32) -> Result<PgStore> { todo!() } }
#[async_trait::async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> Result<()> { todo!() }
    async fn apply(&self, _b: &[Batch]) -> Result<ApplyOutcome> { todo!() }
    async fn record_failures(&self, _r: &str, _f: &[Failure]) -> Result<()> { todo!() }
    async fn get_record(&self, _t: RecordType, _k: &str) -> Result<Option<StoredRecord>> { todo!() }
    async fn history(&self, _t: RecordType, _k: &str) -> Result<Vec<RecordVersion>> { todo!() }
    async fn keys(&self, _t: RecordType) -> Result<Vec<String>> { todo!() }
    async fn version_count(&self) -> Result<i64> { todo!() }
    async fn stats(&self) -> Result<Stats> { todo!() }
    async fn list_failures(&self, _f: &FailureFilter) -> Result<Vec<FailureRow>> { todo!() }
    async fn get_failure(&self, _id: &str) -> Result<Option<FailureRow>> { todo!() }
    async fn checkpoint(&self, _c: &str, _s: &str) -> Result<Option<String>> { todo!() }
    async fn save_checkpoint(&self, _c: &str, _s: &str, _x: &str) -> Result<()> { todo!() }
    async fn begin_run(&self, _r: &str) -> Result<()> { todo!() }
    async fn add_published(&self, _r: &str, _e: i64) -> Result<()> { todo!() }
    async fn run_progress(&self, _r: &str) -> Result<RunProgress> { todo!() }
    async fn changes(&self, _t: Option<RecordType>, _a: i64, _l: u32) -> Result<Vec<Change>> { todo!() }
    async fn ping(&self) -> bool { true }
    fn kind(&self) -> &'static str { "postgres" }
}
