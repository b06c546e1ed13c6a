//! Student size (b): fine-tune the encoder's top layers together with the head. The layers below stay
//! frozen, so their output is computed once and cached in memory; each step runs only the top layers
//! forward and backward (burn autodiff), and the head starts from the frozen-encoder solution.

use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use crate::backend::{block_on, read_f32};
use crate::bert::{self, PooledHead};
use crate::distill::cache;
use crate::distill::train::{AdamW, Head, loss, read_loss, targets};
use crate::encoder::Encoder;
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct FineTuneOptions {
    /// How many of the top layers to train.
    pub layers: usize,
    pub lr: f64,
    pub head_lr: f64,
    pub weight_decay: f64,
    pub epochs: usize,
    pub batch: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FineTuneStats {
    pub epochs: usize,
    pub best_epoch: usize,
    pub val_loss: f32,
    pub seconds: f64,
}

/// The trained top layers (HF names, value as a matrix, stored transposed in HF) and head.
pub struct Tuned {
    pub layers: Vec<(String, Tensor<2>, bool)>,
    pub head: Head,
}

/// One text's frozen input to the trainable layers: [len, hidden] row-major, and its constant pooled
/// features from frozen layers the head reads (in `spec.layers` order, only those below the cut).
struct Input {
    len: usize,
    state: Vec<f32>,
    frozen: Vec<f32>,
}

/// `pooled`: the cached per-layer features of `features::embed` for every layer ([n, hidden * (L+1)]).
fn inputs(enc: &Encoder, texts: &[String], pooled_all: &[f32], from: usize, spec_layers: &[usize], what: &str) -> Result<Vec<Input>> {
    let (h, n_states) = (enc.config().hidden_size, enc.config().num_hidden_layers + 1);
    let ids = enc.tokenize(texts)?;
    let mut out: Vec<Option<Input>> = (0..texts.len()).map(|_| None).collect();
    let bar = cache::bar(texts.len(), what);
    for batch in enc.batches(&ids) {
        let states = enc.model().forward(&batch.ids, &batch.mask, batch.size)?;
        let seq = batch.ids.len() / batch.size.max(1);
        let x = block_on(read_f32(states[from].clone()))?; // [b, seq, h]
        for (r, &i) in batch.rows.iter().enumerate() {
            let len = ids[i].len();
            let row = &pooled_all[i * h * n_states..(i + 1) * h * n_states];
            let frozen = spec_layers.iter().filter(|&&l| l <= from).flat_map(|&l| row[l * h..(l + 1) * h].iter().copied()).collect();
            out[i] = Some(Input { len, state: x[r * seq * h..(r * seq + len) * h].to_vec(), frozen });
        }
        bar.inc(batch.size as u64);
    }
    bar.finish_and_clear();
    Ok(out.into_iter().flatten().collect())
}

struct Model<'a> {
    enc: &'a Encoder,
    spec: &'a PooledHead,
    from: usize,
    hidden: usize,
}

impl Model<'_> {
    /// Logits for a batch of inputs with the given top-layer and head parameters, on `device`.
    fn logits(&self, batch: &[&Input], layers: &[Vec<Tensor<2>>], head: &Head, device: &Device) -> Tensor<2> {
        let (b, h) = (batch.len(), self.hidden);
        let seq = batch.iter().map(|x| x.len).max().unwrap_or(1);
        let mut data = vec![0f32; b * seq * h];
        let mut mask = vec![0u32; b * seq];
        for (r, x) in batch.iter().enumerate() {
            data[r * seq * h..(r * seq + x.len) * h].copy_from_slice(&x.state);
            mask[r * seq..r * seq + x.len].fill(1);
        }
        let mut x = Tensor::<3>::from_data(TensorData::new(data, [b, seq, h]), device); // [b, seq, h]
        let mask_bias = bert::Bert::mask_bias(&mask, b, device);
        let mut top = Vec::with_capacity(layers.len());
        for p in layers {
            x = self.enc.model().layer_forward(p, x, mask_bias.clone());
            top.push(x.clone());
        }
        let last = [self.from + layers.len()];
        let wanted = if self.spec.layers.is_empty() { &last[..] } else { &self.spec.layers[..] };
        let frozen_n = wanted.iter().filter(|&&l| l <= self.from).count();
        let mut parts = Vec::new();
        if frozen_n > 0 {
            let f: Vec<f32> = batch.iter().flat_map(|x| x.frozen.iter().copied()).collect();
            parts.push(Tensor::<2>::from_data(TensorData::new(f, [b, frozen_n * h]), device));
        }
        for &l in wanted.iter().filter(|&&l| l > self.from) {
            parts.push(bert::pool(top[l - self.from - 1].clone(), &mask, self.spec.pooling, self.spec.normalize));
        }
        head.forward(Tensor::cat(parts, 1))
    }
}

/// Fine-tune the top `opts.layers` layers and `head` on (texts, soft targets); early stopping on val.
#[allow(clippy::too_many_arguments)]
pub fn finetune(
    enc: &Encoder,
    spec: &PooledHead,
    head: &Head,
    train: (&[String], &[f32], &[Vec<f32>]),
    val: (&[String], &[f32], &[Vec<f32>]),
    opts: &FineTuneOptions,
) -> Result<(Tuned, FineTuneStats)> {
    let clock = std::time::Instant::now();
    let n_layers = enc.config().num_hidden_layers;
    let from = n_layers - opts.layers.min(n_layers);
    let train_in = inputs(enc, train.0, train.1, from, &spec.layers, "states train")?;
    let val_in = inputs(enc, val.0, val.1, from, &spec.layers, "states val")?;
    let model = Model { enc, spec, from, hidden: enc.config().hidden_size };
    let (names, mut layers): (Vec<Vec<(String, bool)>>, Vec<Vec<Tensor<2>>>) =
        (from..n_layers).map(|i| enc.model().layer_params(i).into_iter().map(|(n, t, tr)| ((n, tr), t)).unzip()).unzip();
    let mut head = head.clone();
    let device = enc.model().device().clone();
    let ad = device.clone().autodiff();

    let val_loss = |layers: &[Vec<Tensor<2>>], head: &Head| -> Result<f32> {
        let mut total = 0.0;
        for (xs, ys) in val_in.chunks(32).zip(val.2.chunks(32)) {
            let batch: Vec<&Input> = xs.iter().collect();
            total += read_loss(loss(model.logits(&batch, layers, head, &device), targets(ys.iter(), &device)))? * xs.len() as f32;
        }
        Ok(total / val_in.len().max(1) as f32)
    };

    // Batches of similar length (less padding), visited in a shuffled order each epoch.
    let mut order: Vec<usize> = (0..train_in.len()).collect();
    order.sort_by_key(|&i| train_in[i].len);
    let batches: Vec<Vec<usize>> = order.chunks(opts.batch.max(1)).map(<[usize]>::to_vec).collect();
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let flat = |layers: &[Vec<Tensor<2>>], head: &Head| -> Vec<Tensor<2>> { layers.iter().flatten().cloned().chain(head.params.iter().cloned()).collect() };
    let mut adam = AdamW::new(&flat(&layers, &head));
    let per_layer = layers.first().map_or(0, Vec::len);
    // Decoupled weight decay on weight matrices only: layer weights (stored transposed in HF) and the
    // head's weights (even indices), not biases or LayerNorm parameters.
    let decays: Vec<bool> = names.iter().flatten().map(|(_, t)| *t).chain(head.params.iter().enumerate().map(|(i, _)| i % 2 == 0)).collect();
    let n_layer_params = per_layer * layers.len();
    let mut best = (val_loss(&layers, &head)?, 0usize, layers.clone(), head.clone());
    eprintln!("finetune: top {} layers, {} train / {} val texts, val loss {:.4} before", opts.layers, train_in.len(), val_in.len(), best.0);
    let mut step = 0usize;
    let total_steps = (opts.epochs * batches.len()) as f64;
    for epoch in 1..=opts.epochs {
        let mut visit: Vec<&Vec<usize>> = batches.iter().collect();
        visit.shuffle(&mut rng);
        let bar = cache::bar(train_in.len(), &format!("epoch {epoch}"));
        for idx in visit {
            step += 1;
            // Linear decay of the learning rate to zero over all steps (the usual BERT schedule).
            let scale = 1.0 - (step - 1) as f64 / total_steps;
            let params = flat(&layers, &head);
            let tracked: Vec<Tensor<2>> = params.iter().map(|p| p.clone().autodiff().require_grad()).collect();
            let t_layers: Vec<Vec<Tensor<2>>> = tracked[..n_layer_params].chunks(per_layer.max(1)).map(<[Tensor<2>]>::to_vec).collect();
            let t_head = Head { params: tracked[n_layer_params..].to_vec(), activation: head.activation };
            let batch: Vec<&Input> = idx.iter().map(|&i| &train_in[i]).collect();
            let grads = loss(model.logits(&batch, &t_layers, &t_head, &ad), targets(idx.iter().map(|&i| &train.2[i]), &ad)).backward();
            let lr = |k: usize| scale * if k < n_layer_params { opts.lr } else { opts.head_lr };
            let updated = adam.step(params, &tracked, &grads, lr, |k| if decays[k] { opts.weight_decay } else { 0.0 });
            layers = updated[..n_layer_params].chunks(per_layer.max(1)).map(<[Tensor<2>]>::to_vec).collect();
            head = Head { params: updated[n_layer_params..].to_vec(), activation: head.activation };
            bar.inc(idx.len() as u64);
        }
        bar.finish_and_clear();
        let vl = val_loss(&layers, &head)?;
        eprintln!("finetune: epoch {epoch}: val loss {vl:.4}");
        if vl < best.0 {
            best = (vl, epoch, layers.clone(), head.clone());
        }
    }
    let (val_loss, best_epoch, layers, head) = best;
    let tuned = names.into_iter().flatten().zip(layers.into_iter().flatten()).map(|((n, t), p)| (n, p, t)).collect();
    Ok((Tuned { layers: tuned, head }, FineTuneStats { epochs: opts.epochs, best_epoch, val_loss, seconds: clock.elapsed().as_secs_f64() }))
}

/// Predicted probabilities of the tuned student for texts (features: the cached per-layer pooling).
pub fn predict(enc: &Encoder, spec: &PooledHead, tuned: &Tuned, texts: &[String], pooled_all: &[f32]) -> Result<Vec<Vec<f32>>> {
    let n_layers = enc.config().num_hidden_layers;
    let top = tuned.layers.len() / enc.model().layer_params(0).len().max(1);
    let from = n_layers - top;
    let ins = inputs(enc, texts, pooled_all, from, &spec.layers, "states test")?;
    let model = Model { enc, spec, from, hidden: enc.config().hidden_size };
    let per_layer = enc.model().layer_params(0).len();
    let layers: Vec<Vec<Tensor<2>>> = tuned.layers.chunks(per_layer).map(|c| c.iter().map(|(_, t, _)| t.clone()).collect()).collect();
    let device = enc.model().device().clone();
    let mut out = Vec::with_capacity(ins.len());
    for chunk in ins.chunks(32) {
        let batch: Vec<&Input> = chunk.iter().collect();
        let p = burn::tensor::activation::softmax(model.logits(&batch, &layers, &tuned.head, &device), 1);
        let c = tuned.head.params.last().map_or(0, |b| b.dims()[1]);
        out.extend(block_on(read_f32(p))?.chunks_exact(c).map(<[f32]>::to_vec));
    }
    Ok(out)
}
