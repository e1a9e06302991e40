//! A compose file, loaded and converted as `stack deploy` does: errors are fine, panics are not.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let details = swarm_compose::Details {
        working_dir: std::path::PathBuf::from("/nonexistent"),
        files: vec![("docker-compose.yml".to_string(), text.to_string())],
        env: BTreeMap::from([("TAG".to_string(), "1".to_string())]),
    };
    if let Ok(loaded) = swarm_compose::load(&details) {
        let _ = swarm_compose::convert(&loaded.config, "fuzz");
    }
});
