//! The filter's plugin configuration, as Envoy hands it to `on_configure`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_filter::config::FilterSettings;

fuzz_target!(|data: &[u8]| {
    if let Ok(settings) = FilterSettings::parse(data) {
        let _ = settings.feed_grace();
    }
});
