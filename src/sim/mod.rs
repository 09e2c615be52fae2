//! STUB
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct SimError;
#[derive(Debug, Clone, Default)]
pub struct Faults { pub error_rate: f64, pub timeout_rate: f64, pub rate_limit_rate: f64, pub truncate_rate: f64 }
pub struct SimConfig { pub seed: u64, pub records: usize, pub invalid_rate: f64, pub base_port: u16, pub host: std::net::IpAddr, pub faults: Faults }
pub struct Simulators;
impl Simulators {
    pub async fn start(_c: SimConfig) -> Result<Simulators, SimError> { Ok(Simulators) }
    pub fn url(&self, _s: &str) -> Option<String> { None }
    pub fn systems(&self) -> Vec<(String, String)> { vec![] }
    pub async fn shutdown(self) {}
}
pub fn default_credentials() -> Vec<(String, String)> { vec![] }
