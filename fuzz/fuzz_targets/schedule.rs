#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cupcake_fuzz::reconciler_targets::schedule(data));
