//! Steering steers: `veer steer-eval --quick` on four prompts of each kind, greedy and sampled. The
//! shipped `positive` vector at its default strength (www/vectors/defaults.json) must raise the
//! sentiment judge's positive rate over unsteered answers, and the negated vector (−v) must lower it.
//! (The `formal` vector is left out of the quick run: the full benchmark finds no reliable effect of
//! it at a strength that keeps answers fluent.)

mod common;

use veer::base::backend;
use veer::apps::steer_eval::report::summarize;
use veer::apps::steer_eval::run::Eval;

/// Smallest change in the judge's positive rate each direction must make on the quick set's 32
/// answers. The full benchmark (docs/steering.md, "Does steering steer?", 128 answers per cell) measured the
/// positive vector at 0.04: 0.66 unsteered → 0.86 (+v) and 0.20 (−v); on the quick set's prompts it
/// was 0.66 → 0.84 and 0.16.
const RAISE: f64 = 0.1;
const LOWER: f64 = 0.3;

#[test]
fn the_positive_vector_raises_the_judged_positive_rate_and_its_negation_lowers_it() {
    let config = common::root().join("bench/steer/eval.json");
    let defaults: serde_json::Value = serde_json::from_slice(&std::fs::read(common::root().join("www/vectors/defaults.json")).unwrap()).unwrap();
    // The quick strengths are the shipped defaults, and the vector files carry them.
    let eval_config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    for a in eval_config["attributes"].as_array().unwrap() {
        let name = a["name"].as_str().unwrap();
        let d = defaults[name].as_f64().unwrap() as f32;
        if name == "positive" {
            let quick: Vec<f32> = serde_json::from_value(a["quick"].clone()).unwrap();
            assert_eq!(quick, vec![d, -d], "{name}: quick strengths vs www/vectors/defaults.json");
        }
        let file = common::models().join(format!("vectors/{name}.safetensors"));
        let v = veer::steering::vector::Vector::from_bytes(&std::fs::read(&file).unwrap(), name).unwrap();
        assert_eq!(v.default_strength, d, "{}: run `make assets`", file.display());
    }

    let eval = Eval::load(&config, true, &backend::cpu().device).unwrap();
    let results = eval.run(|r| eprintln!("{:?}: {} answers in {:.0} s", r.cell, r.answers.len(), r.seconds)).unwrap();
    for attribute in ["positive"] {
        let rows = summarize(&results, attribute);
        let rate = |f: &dyn Fn(Option<f32>) -> bool| rows.iter().find(|r| f(r.strength)).unwrap().success.rate;
        let plain = rate(&|s| s.is_none());
        let plus = rate(&|s| s.is_some_and(|x| x > 0.0));
        let minus = rate(&|s| s.is_some_and(|x| x < 0.0));
        eprintln!("{attribute}: unsteered {plain:.2}, +v {plus:.2}, −v {minus:.2} (n = {})", rows[0].n);
        assert_eq!(rows[0].n, 32);
        assert!(plus >= plain + RAISE, "{attribute}: +v {plus:.2} vs unsteered {plain:.2}");
        assert!(minus <= plain - LOWER, "{attribute}: −v {minus:.2} vs unsteered {plain:.2}");
    }
}
