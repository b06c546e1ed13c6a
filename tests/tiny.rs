//! The core runtimes on tiny random checkpoints (tests/common/synthetic.rs: a few KB, no `make assets`),
//! checked against a plain f64 implementation of the HF modelling code written out below — loops over
//! arrays, independent of burn and of veer's own layers.
//!
//! BERT: word + position + token-type embeddings, LayerNorm, post-LN blocks (attention with padding
//! mask, exact GELU FFN), mean or [CLS] pooling. Llama: RMSNorm, rotate-half RoPE, grouped-query causal
//! attention, SwiGLU, tied embeddings; greedy decoding through the KV cache; ICV and residual steering.

mod common;

use common::rng::Rng;
use common::synthetic::{self, *};
use veer::base::backend::{self, block_on, read_f32};
use veer::base::options::Pooling;
use veer::tasks::encode::Encoder;
use veer::io::files::ModelFiles;
use veer::tasks::generate::{Generation, Model};
use veer::models::llama::cache::Cache;
use veer::models::llama::hook::Plain;
use veer::base::options::{EncoderOptions, GenerateOptions};
use veer::steering::vector::Vector;
use veer::steering::spec::SteeringSpec;
use veer::base::options::{Injection, LayerRange};

// --- f64 building blocks ------------------------------------------------------------------------------

/// y = W x + b, W [out, in] row-major.
fn linear(w: &[f64], b: Option<&[f64]>, x: &[f64]) -> Vec<f64> {
    let inp = x.len();
    (0..w.len() / inp).map(|o| b.map_or(0.0, |b| b[o]) + (0..inp).map(|i| w[o * inp + i] * x[i]).sum::<f64>()).collect()
}

fn layer_norm(x: &[f64], g: &[f64], b: &[f64], eps: f64) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    x.iter().zip(g).zip(b).map(|((v, g), b)| (v - mean) / (var + eps).sqrt() * g + b).collect()
}

fn rms_norm(x: &[f64], g: &[f64], eps: f64) -> Vec<f64> {
    let rms = (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64 + eps).sqrt();
    x.iter().zip(g).map(|(v, g)| v / rms * g).collect()
}

/// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): exact GELU to well within the tolerances.
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0 - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t + 0.254_829_592) * t * (-x * x).exp();
    y.copysign(x)
}

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

fn softmax(v: &mut [f64]) {
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    v.iter_mut().for_each(|x| *x = (*x - max).exp());
    let s: f64 = v.iter().sum();
    v.iter_mut().for_each(|x| *x /= s);
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

fn max_abs(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max)
}

// --- tiny BERT ---------------------------------------------------------------------------------------

fn tiny_bert() -> (Weights, ModelFiles) {
    let (w, config, tokenizer) = synthetic::tiny_bert();
    let files = ModelFiles::new(config, w.safetensors(), tokenizer);
    (w, files)
}

/// HF `BertModel` on one sequence: the last hidden state, [seq][hidden].
fn bert_reference(w: &Weights, ids: &[u32]) -> Vec<Vec<f64>> {
    let g = |n: &str| w.get(n);
    let row = |n: &str, i: usize| g(n)[i * BH..(i + 1) * BH].to_vec();
    let mut x: Vec<Vec<f64>> = ids
        .iter()
        .enumerate()
        .map(|(p, &id)| {
            let e = add(&add(&row("embeddings.word_embeddings.weight", id as usize), &row("embeddings.position_embeddings.weight", p)), &row("embeddings.token_type_embeddings.weight", 0));
            layer_norm(&e, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"), 1e-12)
        })
        .collect();
    let dh = BH / BHEADS;
    for l in 0..BLAYERS {
        let p = |s: &str| format!("encoder.layer.{l}.{s}");
        let lin = |name: &str, x: &[f64]| linear(g(&p(&format!("{name}.weight"))), Some(g(&p(&format!("{name}.bias")))), x);
        let (q, k, v): (Vec<_>, Vec<_>, Vec<_>) = (
            x.iter().map(|t| lin("attention.self.query", t)).collect(),
            x.iter().map(|t| lin("attention.self.key", t)).collect(),
            x.iter().map(|t| lin("attention.self.value", t)).collect(),
        );
        let mut ctx = vec![vec![0.0; BH]; x.len()];
        for h in 0..BHEADS {
            for i in 0..x.len() {
                let mut scores: Vec<f64> = (0..x.len()).map(|j| (0..dh).map(|d| q[i][h * dh + d] * k[j][h * dh + d]).sum::<f64>() / (dh as f64).sqrt()).collect();
                softmax(&mut scores);
                for d in 0..dh {
                    ctx[i][h * dh + d] = (0..x.len()).map(|j| scores[j] * v[j][h * dh + d]).sum();
                }
            }
        }
        x = x
            .iter()
            .zip(&ctx)
            .map(|(t, c)| {
                let a = layer_norm(&add(t, &lin("attention.output.dense", c)), g(&p("attention.output.LayerNorm.weight")), g(&p("attention.output.LayerNorm.bias")), 1e-12);
                let f: Vec<f64> = lin("intermediate.dense", &a).into_iter().map(gelu).collect();
                layer_norm(&add(&a, &lin("output.dense", &f)), g(&p("output.LayerNorm.weight")), g(&p("output.LayerNorm.bias")), 1e-12)
            })
            .collect();
    }
    x
}

#[test]
fn tiny_bert_embeddings_match_the_f64_reference_in_padded_batches() {
    let (w, files) = tiny_bert();
    let texts = ["The cat sat on the mat.", "dogs ran", "", "a big red sun is hot . the dog ran on a mat ."];
    let vocab = bert_vocab();
    let ids = |t: &str| -> Vec<u32> {
        // The reference tokenisation, written out: lower-case, split off punctuation, `##s` for plurals.
        let mut out = vec![2];
        for word in t.to_lowercase().replace('.', " . ").split_whitespace() {
            match vocab.iter().position(|v| *v == word) {
                Some(i) => out.push(i as u32),
                None => {
                    let stem = word.strip_suffix('s').expect("test words are known or plurals");
                    out.push(vocab.iter().position(|v| *v == stem).unwrap() as u32);
                    out.push(vocab.iter().position(|v| *v == "##s").unwrap() as u32);
                }
            }
        }
        out.push(3);
        out
    };
    let device = backend::cpu().device;
    for (pooling, normalize) in [(Pooling::Mean, true), (Pooling::Cls, false)] {
        let enc = Encoder::load(&files, &EncoderOptions { pooling: Some(pooling), normalize, batch_size: 3, ..Default::default() }, &device).unwrap();
        assert_eq!(enc.max_len(), BPOS, "no setting anywhere: the model's positions");
        let got_ids = enc.tokenize(&texts).unwrap();
        let got = block_on(enc.embed(&texts)).unwrap();
        for ((text, got_ids), got) in texts.iter().zip(&got_ids).zip(&got) {
            assert_eq!(got_ids, &ids(text), "{text:?}");
            let hidden = bert_reference(&w, got_ids);
            let mut want: Vec<f64> = match pooling {
                Pooling::Cls => hidden[0].clone(),
                Pooling::Mean => (0..BH).map(|d| hidden.iter().map(|t| t[d]).sum::<f64>() / hidden.len() as f64).collect(),
            };
            if normalize {
                let n = want.iter().map(|x| x * x).sum::<f64>().sqrt();
                want.iter_mut().for_each(|x| *x /= n);
            }
            let diff = max_abs(got, &want);
            assert!(diff <= 1e-5, "{pooling:?} {text:?}: max |Δ| {diff}");
        }
    }
    // Truncation keeps [CLS] … [SEP] within max_length.
    let enc = Encoder::load(&files, &EncoderOptions { max_length: Some(4), ..Default::default() }, &device).unwrap();
    assert_eq!(enc.tokenize(&["the cat sat on the mat"]).unwrap()[0], [2, 4, 5, 3]);
}

// --- tiny Llama --------------------------------------------------------------------------------------

fn tiny_llama() -> (Weights, ModelFiles) {
    let (w, config, tokenizer) = synthetic::tiny_llama();
    let files = ModelFiles::new(config, w.safetensors(), tokenizer);
    (w, files)
}

/// Steering the reference applies: ICV rows (unit directions are taken here) at the MLP output, or
/// residual rows added to the block output; with their strength.
enum RefSteer<'a> {
    None,
    Icv(&'a [Vec<f64>], f64),
    Residual(&'a [Vec<f64>], f64),
}

/// HF `LlamaForCausalLM` on a whole sequence: logits at the last position.
fn llama_reference(w: &Weights, ids: &[u32], steer: &RefSteer) -> Vec<f64> {
    let g = |n: &str| w.get(n);
    let embed = g("model.embed_tokens.weight");
    let mut x: Vec<Vec<f64>> = ids.iter().map(|&i| embed[i as usize * LH..(i as usize + 1) * LH].to_vec()).collect();
    // Rotate-half RoPE: pairs (d, d + dh/2) rotated by pos·θ^(−2d/dh).
    let rope = |v: &mut [f64], pos: usize| {
        let half = LDH / 2;
        for d in 0..half {
            let angle = pos as f64 * THETA.powf(-2.0 * d as f64 / LDH as f64);
            let (a, b) = (v[d], v[d + half]);
            v[d] = a * angle.cos() - b * angle.sin();
            v[d + half] = b * angle.cos() + a * angle.sin();
        }
    };
    for l in 0..LLAYERS {
        let p = |s: &str| format!("model.layers.{l}.{s}.weight");
        let normed: Vec<Vec<f64>> = x.iter().map(|t| rms_norm(t, g(&p("input_layernorm")), EPS)).collect();
        let mut q: Vec<Vec<f64>> = normed.iter().map(|t| linear(g(&p("self_attn.q_proj")), None, t)).collect();
        let mut k: Vec<Vec<f64>> = normed.iter().map(|t| linear(g(&p("self_attn.k_proj")), None, t)).collect();
        let v: Vec<Vec<f64>> = normed.iter().map(|t| linear(g(&p("self_attn.v_proj")), None, t)).collect();
        for (pos, (qt, kt)) in q.iter_mut().zip(k.iter_mut()).enumerate() {
            qt.chunks_mut(LDH).for_each(|h| rope(h, pos));
            kt.chunks_mut(LDH).for_each(|h| rope(h, pos));
        }
        let mut out = Vec::with_capacity(x.len());
        for i in 0..x.len() {
            let mut ctx = vec![0.0; LHEADS * LDH];
            for h in 0..LHEADS {
                let kvh = h / (LHEADS / LKV);
                let mut scores: Vec<f64> = (0..=i).map(|j| (0..LDH).map(|d| q[i][h * LDH + d] * k[j][kvh * LDH + d]).sum::<f64>() / (LDH as f64).sqrt()).collect();
                softmax(&mut scores);
                for d in 0..LDH {
                    ctx[h * LDH + d] = (0..=i).map(|j| scores[j] * v[j][kvh * LDH + d]).sum();
                }
            }
            let a = add(&x[i], &linear(g(&p("self_attn.o_proj")), None, &ctx));
            let n = rms_norm(&a, g(&p("post_attention_layernorm")), EPS);
            let (gate, up) = (linear(g(&p("mlp.gate_proj")), None, &n), linear(g(&p("mlp.up_proj")), None, &n));
            let act: Vec<f64> = gate.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            let mut m = linear(g(&p("mlp.down_proj")), None, &act);
            if let RefSteer::Icv(rows, lambda) = steer {
                // y = λ(1 + max(0, cos(m, −v)))·v/‖v‖; m′ = ‖m‖·normalize(m/‖m‖ + y)
                let norm = |z: &[f64]| z.iter().map(|a| a * a).sum::<f64>().sqrt();
                let (vn, mn) = (norm(&rows[l]), norm(&m));
                let unit: Vec<f64> = rows[l].iter().map(|a| a / vn).collect();
                let cos_neg = -m.iter().zip(&unit).map(|(a, b)| a * b).sum::<f64>() / mn;
                let u: Vec<f64> = m.iter().zip(&unit).map(|(a, b)| a / mn + lambda * (1.0 + cos_neg.max(0.0)) * b).collect();
                let un = norm(&u);
                m = u.iter().map(|a| a / un * mn).collect();
            }
            let mut y = add(&a, &m);
            if let RefSteer::Residual(rows, lambda) = steer {
                y = y.iter().zip(&rows[l]).map(|(a, b)| a + lambda * b).collect();
            }
            out.push(y);
        }
        x = out;
    }
    let last = rms_norm(x.last().unwrap(), g("model.norm.weight"), EPS);
    (0..LV).map(|t| (0..LH).map(|d| embed[t * LH + d] * last[d]).sum()).collect()
}

fn argmax(v: &[f64]) -> u32 {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b }) as u32
}

/// Greedy continuation by the reference: the whole sequence rerun for every token (no cache).
fn reference_greedy(w: &Weights, prompt: &[u32], n: usize, steer: &RefSteer) -> Vec<u32> {
    let mut seq = prompt.to_vec();
    let mut out = Vec::new();
    while out.len() < n {
        let id = argmax(&llama_reference(w, &seq, steer));
        out.push(id);
        seq.push(id);
        if id == EOS {
            break;
        }
    }
    out
}

fn steering_vector(rows: &[Vec<f64>], injection: Injection) -> Vector {
    Vector { layers: rows.iter().map(|r| r.iter().map(|&x| x as f32).collect()).collect(), model: "tiny".into(), method: "test".into(), injection, default_strength: 0.5, pairs: 0, signature: Default::default() }
}

#[test]
fn tiny_llama_logits_and_greedy_decoding_match_the_f64_reference() {
    let (w, files) = tiny_llama();
    let device = backend::cpu().device;
    let m = load_f32(&files, "tiny", &device).unwrap();
    let prompt = "w5 w9 w3 w17 w2 w11";
    let ids = m.encode(prompt).unwrap();
    assert_eq!(ids, [5, 9, 3, 17, 2, 11]);
    let got = block_on(read_f32(m.llama.forward(&ids, &mut Cache::default(), &Plain, false).unwrap().logits)).unwrap();
    let want = llama_reference(&w, &ids, &RefSteer::None);
    assert!(max_abs(&got, &want) <= 1e-4, "prefill logits: max |Δ| {}", max_abs(&got, &want));

    let options = GenerateOptions { max_tokens: 12, ..Default::default() };
    let mut g = block_on(Generation::start(&m, prompt, &options, &Plain)).unwrap();
    while block_on(g.next(&m, &Plain)).unwrap().is_some() {}
    assert_eq!(g.ids(), reference_greedy(&w, &ids, 12, &RefSteer::None).as_slice(), "greedy through the KV cache");
}

#[test]
fn a_long_prompt_prefilled_in_chunks_gives_the_f64_reference_logits() {
    let (w, files) = tiny_llama();
    let device = backend::cpu().device;
    let m = load_f32(&files, "tiny", &device).unwrap();
    // 40 tokens (the tiny context is 64) in chunks of 7, then 1, then the whole prompt at once.
    let ids: Vec<u32> = (0..40).map(|i| (i * 7 + 3) % LV as u32).collect();
    let want = llama_reference(&w, &ids, &RefSteer::None);
    for chunk in [7, 1, 40, 512] {
        let mut cache = Cache::default();
        let got = block_on(read_f32(m.llama.prefill(&ids, &mut cache, &Plain, chunk).unwrap().logits)).unwrap();
        assert_eq!(cache.len(), 40);
        assert!(max_abs(&got, &want) <= 1e-4, "chunk {chunk}: max |Δ| {}", max_abs(&got, &want));
    }
    // Past the context: an error before any forward, and the cache is untouched.
    let mut cache = Cache::default();
    let long: Vec<u32> = (0..65).map(|i| i % LV as u32).collect();
    let e = m.llama.prefill(&long, &mut cache, &Plain, 7).err().unwrap();
    assert!(e.to_string().contains("65 tokens exceed the model's context of 64"), "{e}");
    assert_eq!(cache.len(), 0);
}

#[test]
fn continuing_a_generation_gives_the_f64_reference_logits_and_greedy_ids() {
    let (w, files) = tiny_llama();
    let device = backend::cpu().device;
    let m = load_f32(&files, "tiny", &device).unwrap();
    let options = GenerateOptions { max_tokens: 6, ..Default::default() };
    let mut g = block_on(Generation::start(&m, "w5 w9 w3", &options, &Plain)).unwrap();
    while block_on(g.next(&m, &Plain)).unwrap().is_some() {}
    // The next prompt repeats the first and its answer, then adds two words.
    let said: Vec<u32> = g.prompt().iter().chain(g.ids()).copied().collect();
    let text = said.iter().chain(&[7, 8]).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
    let read = g.prompt().len() + g.ids().len() - 1; // the last sampled token never ran
    let mut next = block_on(Generation::resume(Some(g), &m, text.as_str(), &options, &Plain)).unwrap();
    assert_eq!(next.reused(), read);
    let ids: Vec<u32> = next.prompt().to_vec();
    while block_on(next.next(&m, &Plain)).unwrap().is_some() {}
    assert_eq!(next.ids(), reference_greedy(&w, &ids, 6, &RefSteer::None).as_slice());
    // A prompt that is a prefix of what was read keeps all but its last token.
    let short = said[..4].iter().map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
    let again = block_on(Generation::resume(Some(next), &m, short.as_str(), &options, &Plain)).unwrap();
    assert_eq!(again.reused(), 3);
}

#[test]
fn batch_size_and_pair_count_are_capped_before_any_work() {
    let (_, files) = tiny_bert();
    let device = backend::cpu().device;
    // 2 heads × 16² × 4 B = 2 KiB of scores per text: 262 144 texts fit the budget.
    let too_many = EncoderOptions { batch_size: 262_145, ..Default::default() };
    let e = Encoder::load(&files, &too_many, &device).err().unwrap();
    assert!(e.to_string().contains("batchSize 262145: at most 262144 texts of up to 16 tokens"), "{e}");
    assert!(Encoder::load(&files, &EncoderOptions { batch_size: 262_144, ..Default::default() }, &device).is_ok());

    let (_, files) = tiny_llama();
    let m = load_f32(&files, "tiny", &device).unwrap();
    let pairs = vec![(vec![2, 3], vec![4, 5]); veer::base::limits::MAX_PAIRS + 1];
    let e = block_on(veer::steering::icv::compute(&m.llama, &pairs, veer::steering::icv::Method::Mean, "tiny")).err().unwrap();
    assert!(e.to_string().contains("1025 demonstration pairs: at most 1024"), "{e}");
}

#[test]
fn a_vector_computed_with_another_model_of_the_same_shape_is_refused_unless_forced() {
    let (mut w, config, tokenizer) = synthetic::tiny_llama();
    let device = backend::cpu().device;
    let load = |bytes: Vec<u8>| load_f32(&ModelFiles::new(config.clone(), bytes, tokenizer.clone()), "tiny", &device).unwrap();
    let m = load(w.safetensors());
    let pairs = vec![(m.encode("w1 w2").unwrap(), m.encode("w3 w4").unwrap())];
    let v = block_on(veer::steering::icv::compute(&m.llama, &pairs, veer::steering::icv::Method::Mean, "tiny")).unwrap();
    let v = Vector::from_safetensors(&v.to_safetensors().unwrap(), "tiny.safetensors").unwrap(); // as a page loads it
    let spec = |force| SteeringSpec { vectors: vec![("tiny.safetensors".into(), v.clone(), None)], force, ..Default::default() };
    assert!(spec(false).build(&m.llama).unwrap().is_some());
    // The same weights stored as F16: the same model.
    let f16 = load(w.safetensors_in(veer::io::safetensors::OutDtype::F16));
    assert!(spec(false).build(&f16.llama).is_ok(), "an F16 copy of the same weights");
    // Another model of the same shape (other weights): refused, naming the vector, unless forced.
    for (_, values) in w.0.values_mut() {
        values.iter_mut().for_each(|x| *x = 0.1 - *x);
    }
    let other = load(w.safetensors());
    let e = spec(false).build(&other.llama).err().unwrap();
    assert_eq!(e.code(), "E_INVALID");
    assert!(e.to_string().contains("tiny.safetensors") && e.to_string().contains("forceVectors"), "{e}");
    assert!(spec(true).build(&other.llama).unwrap().is_some(), "forced");
    // The request option is what sets it.
    let options = GenerateOptions { steer: vec!["tiny.safetensors".parse().unwrap()], force_vectors: true, ..Default::default() };
    assert!(SteeringSpec::resolve(&options, |_| Ok(v.clone())).unwrap().build(&other.llama).is_ok());
}

#[test]
fn tiny_llama_steering_matches_the_f64_reference() {
    let (w, files) = tiny_llama();
    let device = backend::cpu().device;
    let m = load_f32(&files, "tiny", &device).unwrap();
    let ids = m.encode("w4 w8 w15 w16 w23").unwrap();
    let mut rng = Rng(3);
    let rows: Vec<Vec<f64>> = (0..LLAYERS).map(|_| rng.values(LH, 1.0)).collect();
    for (injection, lambda) in [(Injection::Icv, 0.7), (Injection::Residual, 2.0)] {
        let spec = SteeringSpec { vectors: vec![("tiny".into(), steering_vector(&rows, injection), Some(lambda as f32))], ..Default::default() };
        let steering = spec.build(&m.llama).unwrap().unwrap();
        let got = block_on(read_f32(m.llama.forward(&ids, &mut Cache::default(), &steering, false).unwrap().logits)).unwrap();
        let reference = match injection {
            Injection::Icv => RefSteer::Icv(&rows, lambda),
            Injection::Residual => RefSteer::Residual(&rows, lambda),
        };
        let want = llama_reference(&w, &ids, &reference);
        assert!(max_abs(&got, &want) <= 1e-4, "{injection:?}: max |Δ| {}", max_abs(&got, &want));
        let plain = llama_reference(&w, &ids, &RefSteer::None);
        assert!(want.iter().zip(&plain).any(|(a, b)| (a - b).abs() > 1e-2), "{injection:?} must change the logits");
        // Steered greedy decoding, token by token through the cache, as the reference reruns it.
        let options = GenerateOptions { max_tokens: 8, ..Default::default() };
        let mut g = block_on(Generation::start(&m, "w4 w8 w15 w16 w23", &options, &steering)).unwrap();
        while block_on(g.next(&m, &steering)).unwrap().is_some() {}
        assert_eq!(g.ids(), reference_greedy(&w, &ids, 8, &reference).as_slice(), "{injection:?} greedy");
    }
    // A layer range leaves the other blocks alone: residual steering on the last block only.
    let spec = SteeringSpec { vectors: vec![("tiny".into(), steering_vector(&rows, Injection::Residual), Some(2.0))], layers: Some(LayerRange([LLAYERS - 1, LLAYERS])), ..Default::default() };
    let steering = spec.build(&m.llama).unwrap().unwrap();
    let got = block_on(read_f32(m.llama.forward(&ids, &mut Cache::default(), &steering, false).unwrap().logits)).unwrap();
    let only_last: Vec<Vec<f64>> = (0..LLAYERS).map(|l| if l == LLAYERS - 1 { rows[l].clone() } else { vec![0.0; LH] }).collect();
    let want = llama_reference(&w, &ids, &RefSteer::Residual(&only_last, 2.0));
    assert!(max_abs(&got, &want) <= 1e-4, "layer range: max |Δ| {}", max_abs(&got, &want));
}

/// `files` with config.json's fields replaced by `patch`.
fn patched(files: &ModelFiles, patch: serde_json::Value) -> ModelFiles {
    let mut config: serde_json::Value = serde_json::from_slice(&files.config.bytes).unwrap();
    for (k, v) in patch.as_object().unwrap() {
        config[k] = v.clone();
    }
    ModelFiles { config: veer::io::files::File { name: files.config.name.clone(), bytes: serde_json::to_vec(&config).unwrap() }, ..files.clone() }
}

/// Hostile config.json files over valid weights: each is an error naming the field (or the tensors),
/// raised before anything is sized from the bad value (each used to abort the process), and the same
/// weights load afterwards.
#[test]
fn hostile_configs_are_errors_that_name_the_field() {
    let device = backend::cpu().device;
    let (_, llama) = tiny_llama();
    let load = |patch: serde_json::Value| load_f32(&patched(&llama, patch), "tiny", &device).err().map(|e| (e.code(), e.to_string()));
    for (patch, want) in [
        (serde_json::json!({"num_hidden_layers": 100000}), "num_hidden_layers"),
        (serde_json::json!({"max_position_embeddings": 1_000_000_000}), "max_position_embeddings"),
        (serde_json::json!({"rms_norm_eps": 0.0}), "rms_norm_eps"),
        (serde_json::json!({"rope_theta": -1.0}), "rope_theta"),
        (serde_json::json!({"hidden_size": 0}), "hidden_size"),
        (serde_json::json!({"eos_token_id": 999999}), "eos_token_id"),
        (serde_json::json!({"tie_word_embeddings": false}), "tie_word_embeddings"),
    ] {
        let (code, msg) = load(patch.clone()).unwrap_or_else(|| panic!("{patch} loaded"));
        assert_eq!(code, "E_CONFIG", "{patch}: {msg}");
        assert!(msg.contains(want), "{patch}: {msg}");
    }
    // More layers than the file has (within the cap): one error listing the missing tensors, capped.
    let (code, msg) = load(serde_json::json!({"num_hidden_layers": 900})).unwrap();
    assert_eq!(code, "E_FILE");
    assert!(msg.contains("model.layers.3.") && msg.contains("and ") && msg.contains("more"), "{msg}");
    assert!(msg.len() < 4000, "the message lists every problem: {} bytes", msg.len());
    assert!(load(serde_json::json!({})).is_none(), "the unmodified files load");

    let (_, bert) = tiny_bert();
    let options = EncoderOptions::default();
    let load = |patch: serde_json::Value| Encoder::load(&patched(&bert, patch), &options, &device).err().map(|e| (e.code(), e.to_string()));
    for (patch, want) in [
        (serde_json::json!({"num_hidden_layers": 100000}), "num_hidden_layers"),
        (serde_json::json!({"layer_norm_eps": -1.0}), "layer_norm_eps"),
        (serde_json::json!({"vocab_size": 0}), "vocab_size"),
        (serde_json::json!({"max_position_embeddings": 4_000_000_000u64}), "max_position_embeddings"),
    ] {
        let (code, msg) = load(patch.clone()).unwrap_or_else(|| panic!("{patch} loaded"));
        assert_eq!(code, "E_CONFIG", "{patch}: {msg}");
        assert!(msg.contains(want), "{patch}: {msg}");
    }
    assert!(load(serde_json::json!({})).is_none());
}

/// A classifier head of shape [4 000 000 000, 0]: valid safetensors (0 bytes of data) whose row count
/// would size the label list; an error naming the tensor.
#[test]
fn an_empty_classifier_tensor_with_a_huge_row_count_is_an_error() {
    let (mut w, files) = tiny_bert();
    w.0.insert("classifier.weight".into(), (vec![4_000_000_000, 0], vec![]));
    w.0.insert("classifier.bias".into(), (vec![2], vec![0.0, 0.0]));
    let files = ModelFiles { weights: veer::io::files::File { name: "model.safetensors".into(), bytes: w.safetensors() }, ..files };
    let e = Encoder::load(&files, &EncoderOptions::default(), &backend::cpu().device).err().expect("loaded");
    assert_eq!(e.code(), "E_TENSOR");
    assert!(e.to_string().contains("classifier.weight"), "{e}");
}

/// A generation that fills the model's context ends with `length` (it used to fail on the next step),
/// and NaN logits end it with an error naming the step (they used to be sampled as token 0).
#[test]
fn generation_ends_at_the_context_and_refuses_nan_logits() {
    use veer::tasks::generate::Finish;
    let device = backend::cpu().device;
    let (mut w, files) = tiny_llama();
    // No end-of-text id, so only the context (64 positions) can stop a long request.
    let m = load_f32(&patched(&files, serde_json::json!({"eos_token_id": []})), "tiny", &device).unwrap();
    let prompt = (0..60).map(|i| format!("w{}", 2 + i % 20)).collect::<Vec<_>>().join(" ");
    let options = GenerateOptions { max_tokens: 100, ..Default::default() };
    let mut g = block_on(Generation::start(&m, &prompt, &options, &Plain)).unwrap();
    while block_on(g.next(&m, &Plain)).unwrap().is_some() {}
    assert_eq!(g.finish, Some(Finish::Length));
    // 64 positions ran (the prompt, then every generated token but the last, which was only sampled).
    assert_eq!((g.prompt().len(), g.ids().len()), (60, 5));

    w.0.get_mut("model.norm.weight").unwrap().1[0] = f64::NAN;
    let files = ModelFiles { weights: veer::io::files::File { name: "model.safetensors".into(), bytes: w.safetensors() }, ..files };
    let m = load_f32(&files, "tiny", &device).unwrap();
    let mut g = block_on(Generation::start(&m, "w5 w9", &GenerateOptions::default(), &Plain)).unwrap();
    let e = block_on(g.next(&m, &Plain)).err().expect("NaN logits were sampled");
    assert_eq!(e.code(), "E_INVALID");
    assert!(e.to_string().contains("non-finite logit") && e.to_string().contains("step 1"), "{e}");
}

/// A classifier whose weights hold a NaN returns an error, never NaN scores.
#[test]
fn a_classifier_with_nan_weights_is_an_error_not_nan_scores() {
    let (mut w, files) = tiny_bert();
    let mut rng = Rng(3);
    w.add(&mut rng, "classifier.weight", &[2, BH], 0.5, 0.0);
    w.add(&mut rng, "classifier.bias", &[2], 0.1, 0.0);
    w.add(&mut rng, "pooler.dense.weight", &[BH, BH], 0.5, 0.0);
    w.add(&mut rng, "pooler.dense.bias", &[BH], 0.1, 0.0);
    let with = |w: &Weights| ModelFiles { weights: veer::io::files::File { name: "model.safetensors".into(), bytes: w.safetensors() }, ..files.clone() };
    let device = backend::cpu().device;
    let ok = Encoder::load(&with(&w), &EncoderOptions::default(), &device).unwrap();
    let scores = block_on(ok.classify(&["the cat sat"])).unwrap();
    assert!(scores[0].scores.iter().all(|(_, s)| s.is_finite()));
    w.0.get_mut("classifier.bias").unwrap().1[1] = f64::NAN;
    let bad = Encoder::load(&with(&w), &EncoderOptions::default(), &device).unwrap();
    let e = block_on(bad.classify(&["the cat sat"])).err().expect("NaN scores were returned");
    assert_eq!(e.code(), "E_INVALID");
    assert!(e.to_string().contains("non-finite scores"), "{e}");
}

/// The encoder computes on a batch's tokens only (`bert::Packing`): a padded position reads a token
/// of its own text, so a NaN that one text's tokens produce (here: a NaN in the embedding of "cat")
/// stays in that text; the other texts in the batch get the values they get alone.
#[test]
fn a_nan_in_one_text_does_not_reach_the_others_in_its_batch() {
    let (mut w, files) = tiny_bert();
    let cat = bert_vocab().iter().position(|v| *v == "cat").unwrap();
    w.0.get_mut("embeddings.word_embeddings.weight").unwrap().1[cat * BH] = f64::NAN;
    let files = ModelFiles { weights: veer::io::files::File { name: "model.safetensors".into(), bytes: w.safetensors() }, ..files };
    let device = backend::cpu().device;
    let enc = Encoder::load(&files, &EncoderOptions { batch_size: 8, ..Default::default() }, &device).unwrap();
    // The dog text is longest, so the cat text is padded; "dogs ran" is padded too.
    let texts = ["the cat sat", "a big red sun is hot . the dog ran on a mat .", "dogs ran"];
    let batch = block_on(enc.embed(&texts)).unwrap();
    assert!(batch[0].iter().all(|x| x.is_nan()), "the cat text reads the NaN embedding");
    for (i, text) in texts.iter().enumerate().skip(1) {
        let alone = block_on(enc.embed(&[*text])).unwrap();
        assert!(batch[i].iter().all(|x| x.is_finite()), "{text:?}: {:?}", &batch[i][..4]);
        let diff = batch[i].iter().zip(&alone[0]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff <= 1e-6, "{text:?}: max |Δ| {diff} against the text alone");
    }
}

/// The decoders here against their f64 references: exact f32 weights (the CPU's default quantises them).
fn load_f32(files: &ModelFiles, name: &str, device: &burn::tensor::Device) -> veer::base::error::Result<Model> {
    Model::load_with(files, name, device, &veer::base::options::DecoderOptions { weights: veer::base::options::WeightFormat::F32 })
}

/// The tiny decoder stored quantised (io::quantised: int8 with one scale per row, as `veer pack` writes
/// any width): loaded as int8 on the CPU, its logits within int8's rounding of the f32 model's; a
/// malformed layout is a load error naming the tensor, never a panic or a guess.
#[test]
fn quantised_tensors_load_as_int8_or_name_what_is_wrong() {
    use veer::io::safetensors::{OutDtype, Stored};
    let (w, files) = tiny_llama();
    let device = backend::cpu().device;
    let file = |edit: &dyn Fn(&mut Vec<Stored>)| {
        let mut names: Vec<&String> = w.0.keys().collect();
        names.sort();
        let mut tensors = Vec::new();
        for n in names {
            let (shape, v) = &w.0[n];
            let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            match shape.as_slice() {
                &[out, inp] if veer::io::quantise::quantisable(n, shape) => tensors.extend(veer::io::quantise::q8_per_row(n, out, inp, &v)),
                _ => tensors.push(Stored::floats(n.as_str(), shape.clone(), &v, OutDtype::F32)),
            }
        }
        edit(&mut tensors);
        ModelFiles { weights: veer::io::files::File { name: "model.safetensors".into(), bytes: veer::io::safetensors::write(&tensors, Default::default(), "m").unwrap() }, ..files.clone() }
    };
    let ids = [5, 9, 3, 17, 2, 11];
    let logits = |m: &Model| block_on(read_f32(m.llama.forward(&ids, &mut Cache::default(), &Plain, false).unwrap().logits)).unwrap();
    let (exact, q8) = (load_f32(&files, "tiny", &device).unwrap(), Model::load(&file(&|_| {}), "tiny", &device).unwrap());
    assert_eq!(q8.llama.weights, "int8");
    let (a, b) = (logits(&exact), logits(&q8));
    let scale = a.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(worst <= 0.05 * scale, "int8 logits off by {worst} (largest {scale})");

    let down = "model.layers.0.mlp.down_proj.weight";
    let cases: [(&str, Box<dyn Fn(&mut Vec<Stored>)>); 3] = [
        // A scale per 13th of a 12-wide row: groups that do not divide the row.
        (down, Box::new(move |t| {
            let s = t.iter_mut().find(|s| s.name == format!("{down}_scale")).unwrap();
            (s.shape, s.bytes) = (vec![LH, LFFN + 1], vec![0; LH * (LFFN + 1) * 4]);
        })),
        // An int8 weight whose scales are missing.
        ("model.layers.1.self_attn.o_proj.weight", Box::new(|t| t.retain(|s| s.name != "model.layers.1.self_attn.o_proj.weight_scale"))),
        // 4-bit bytes for a row that is not a whole number of 32-input groups.
        ("model.layers.2.mlp.up_proj.weight", Box::new(|t| {
            let s = t.iter_mut().find(|s| s.name == "model.layers.2.mlp.up_proj.weight").unwrap();
            (s.dtype, s.shape, s.bytes) = (safetensors::Dtype::U8, vec![LFFN, LH / 2], vec![0; LFFN * LH / 2]);
        })),
    ];
    for (tensor, edit) in cases {
        for f32 in [false, true] {
            let files = file(&*edit);
            let got = if f32 { load_f32(&files, "tiny", &device) } else { Model::load(&files, "tiny", &device) };
            let e = got.err().unwrap_or_else(|| panic!("{tensor}: loaded"));
            assert_eq!(e.code(), "E_FILE", "{e}");
            assert!(e.to_string().contains(tensor), "{tensor}: {e}");
        }
    }
}
