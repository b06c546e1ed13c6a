//! Student size (b): fine-tune the encoder's top layers together with the head. The layers below stay
//! frozen, so their output is computed once and cached in memory; each step runs only the top layers
//! forward and backward (burn autodiff), and the head starts from the frozen-encoder solution.
//!
//! The layers' weight matrices are trained either directly or as low-rank adapters (LoRA, Hu et al.
//! 2021: W = W0 + A·B with A [in, r] random and B [r, out] zero at the start), biases and LayerNorm
//! parameters directly in both cases. Adapters make the trained student small enough to commit
//! (rank 8 on all six MiniLM layers: 0.37 M parameters instead of 10.6 M); `veer pack` merges them.

use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::base::backend::{block_on, read_f32};
use crate::nn::linear::NamedParam;
use crate::base::options::PooledHead;
use crate::apps::distill::cache;
use crate::tasks::heads::tensor::{AdamW, Head, loss, read_loss, targets};
use crate::tasks::encode::Encoder;
use crate::base::error::Result;

/// `veer distill --finetune-*`: student size (b), the head trained on with the encoder's top layers.
#[derive(Debug, Clone, clap::Args)]
pub struct FineTuneOptions {
    /// Also fine-tune this many top encoder layers with the head (0: none).
    #[arg(id = "finetune_layers", value_name = "LAYERS", long = "finetune-layers", default_value_t = FineTuneOptions::default().layers)]
    pub layers: usize,
    #[arg(id = "finetune_lr", value_name = "LR", long = "finetune-lr", default_value_t = FineTuneOptions::default().lr)]
    pub lr: f64,
    #[arg(id = "finetune_head_lr", value_name = "LR", long = "finetune-head-lr", default_value_t = FineTuneOptions::default().head_lr)]
    pub head_lr: f64,
    #[arg(skip = FineTuneOptions::default().weight_decay)]
    pub weight_decay: f64,
    #[arg(id = "finetune_epochs", value_name = "EPOCHS", long = "finetune-epochs", default_value_t = FineTuneOptions::default().epochs)]
    pub epochs: usize,
    #[arg(skip = FineTuneOptions::default().batch)]
    pub batch: usize,
    /// The head's training seed (`veer distill --seed`).
    #[arg(skip = FineTuneOptions::default().seed)]
    pub seed: u64,
    /// Train the layers' weight matrices as LoRA adapters of this rank (0: the matrices themselves).
    /// Adapters keep the head file small; `veer pack` merges them into the encoder.
    #[arg(id = "finetune_rank", value_name = "RANK", long = "finetune-rank", default_value_t = FineTuneOptions::default().rank, requires = "finetune_layers")]
    pub rank: usize,
}

impl Default for FineTuneOptions {
    fn default() -> Self {
        FineTuneOptions { layers: 0, lr: 5e-5, head_lr: 1e-3, weight_decay: 0.01, epochs: 3, batch: 16, seed: 0, rank: 0 }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FineTuneStats {
    pub epochs: usize,
    pub trainable: usize,
    pub best_epoch: usize,
    pub val_loss: f32,
    pub seconds: f64,
}

/// The trained student.
pub struct Tuned {
    /// The top layers' effective parameters (adapters merged), in `layer_params` order.
    pub layers: Vec<NamedParam>,
    /// What the head file keeps of the layers: the same tensors, or with LoRA the factors
    /// (`….lora_A` [in, r] and `….lora_B` [r, out], stored transposed like PEFT's) and the vectors.
    pub stored: Vec<NamedParam>,
    pub head: Head,
}

/// Where a layer parameter's trained value comes from.
#[derive(Clone, Copy)]
enum Slot {
    /// Trainable parameter j itself.
    Direct(usize),
    /// The frozen base plus trainable parameters a·b.
    Lora(usize, usize),
}

/// The trainable parameters of the top layers and how they make each layer's parameters.
struct Params {
    /// The frozen weights under adapters, on the model's device and on its autodiff device (moved
    /// once here, not in every training step).
    base: Vec<Vec<Tensor<2>>>,
    base_ad: Vec<Vec<Tensor<2>>>,
    slots: Vec<Vec<Slot>>,
    decays: Vec<bool>,
    n_layer: usize,
}

impl Params {
    /// The mapping and the trainable values' initial state (layer parameters first, then the head's).
    fn new(base: Vec<Vec<Tensor<2>>>, matrix: &[Vec<bool>], head: &Head, rank: usize, seed: u64, ad: &Device) -> (Self, Vec<Tensor<2>>) {
        // Our own seeded generator, as for the head: burn's random tensors are not reproducible
        // across backends.
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x10_2a);
        let (mut values, mut decays, mut slots) = (Vec::new(), Vec::new(), Vec::new());
        for (layer, is_matrix) in base.iter().zip(matrix) {
            let mut row = Vec::new();
            for (p, &m) in layer.iter().zip(is_matrix) {
                if m && rank > 0 {
                    let [i, o] = p.dims();
                    let bound = 1.0 / (i as f32).sqrt();
                    let a: Vec<f32> = (0..i * rank).map(|_| rng.random_range(-bound..bound)).collect();
                    values.push(Tensor::<2>::from_data(TensorData::new(a, [i, rank]), &p.device())); // [in, r]
                    values.push(Tensor::<2>::zeros([rank, o], &p.device())); // [r, out]
                    decays.extend([true, true]);
                    row.push(Slot::Lora(values.len() - 2, values.len() - 1));
                } else {
                    values.push(p.clone());
                    // Decoupled weight decay on weight matrices only, not biases or LayerNorm.
                    decays.push(m);
                    row.push(Slot::Direct(values.len() - 1));
                }
            }
            slots.push(row);
        }
        let n_layer = values.len();
        let head_params = head.params();
        decays.extend((0..head_params.len()).map(|i| i % 2 == 0)); // the head's weights, not its biases
        values.extend(head_params);
        let base_ad = base.iter().map(|l| l.iter().map(|t| t.clone().to_device(ad)).collect()).collect();
        (Params { base, base_ad, slots, decays, n_layer }, values)
    }

    /// Layer parameters from `values`: the plain ones, or their autodiff copies (`tracked`).
    fn layers(&self, values: &[Tensor<2>], tracked: bool) -> Vec<Vec<Tensor<2>>> {
        self.slots
            .iter()
            .zip(if tracked { &self.base_ad } else { &self.base })
            .map(|(row, base)| {
                row.iter()
                    .zip(base)
                    .map(|(slot, w0)| match *slot {
                        Slot::Direct(j) => values[j].clone(),
                        Slot::Lora(a, b) => w0.clone() + values[a].clone().matmul(values[b].clone()),
                    })
                    .collect()
            })
            .collect()
    }

    fn head(&self, values: &[Tensor<2>], shape: &Head) -> Head {
        shape.with_params(&values[self.n_layer..])
    }

    /// The tensors the head file keeps for the layers (see `Tuned::stored`).
    fn stored(&self, values: &[Tensor<2>], names: &[Vec<(String, bool)>]) -> Vec<NamedParam> {
        let mut out = Vec::new();
        for (row, names) in self.slots.iter().zip(names) {
            for (slot, (name, m)) in row.iter().zip(names) {
                match *slot {
                    Slot::Direct(j) => out.push(NamedParam { name: name.clone(), value: values[j].clone(), transposed: *m }),
                    Slot::Lora(a, b) => {
                        let stem = name.strip_suffix(".weight").unwrap_or(name);
                        out.push(NamedParam { name: format!("{stem}.lora_A"), value: values[a].clone(), transposed: true });
                        out.push(NamedParam { name: format!("{stem}.lora_B"), value: values[b].clone(), transposed: true });
                    }
                }
            }
        }
        out
    }
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
        let packing = crate::models::bert::packing::Packing::new(&mask, b, device);
        let mut x = packing.pack(Tensor::<3>::from_data(TensorData::new(data, [b, seq, h]), device)); // [tokens, h]
        let mut top = Vec::with_capacity(layers.len());
        for p in layers {
            x = self.enc.model().layer_forward(p, x, &packing);
            top.push(packing.unpack(x.clone()));
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
            parts.push(crate::nn::pooling::pool(top[l - self.from - 1].clone(), &mask, self.spec.pooling, self.spec.normalize));
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
    // Per layer: (HF name, is a matrix) and the current value of each parameter.
    type Layers = (Vec<Vec<(String, bool)>>, Vec<Vec<Tensor<2>>>);
    let (names, base): Layers =
        (from..n_layers).map(|i| enc.model().layer_params(i).into_iter().map(|p| ((p.name, p.transposed), p.value)).unzip()).unzip();
    let matrix: Vec<Vec<bool>> = names.iter().map(|r| r.iter().map(|(_, m)| *m).collect()).collect();
    let device = enc.model().device().clone();
    let ad = device.clone().autodiff();
    let (params, mut values) = Params::new(base, &matrix, head, opts.rank, opts.seed, &ad);

    let val_loss = |values: &[Tensor<2>]| -> Result<f32> {
        let (layers, head) = (params.layers(values, false), params.head(values, head));
        let mut total = 0.0;
        for (xs, ys) in val_in.chunks(32).zip(val.2.chunks(32)) {
            let batch: Vec<&Input> = xs.iter().collect();
            total += block_on(read_loss(loss(model.logits(&batch, &layers, &head, &device), targets(ys.iter(), &device))))? * xs.len() as f32;
        }
        Ok(total / val_in.len().max(1) as f32)
    };

    let batches = length_batches(&train_in, opts.batch);
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let mut adam = AdamW::new(&values);
    let trainable: usize = values.iter().map(|p| p.dims().iter().product::<usize>()).sum();
    let mut best = (val_loss(&values)?, 0usize, values.clone());
    eprintln!(
        "finetune: top {} layers ({}), {trainable} trainable parameters, {} train / {} val texts, val loss {:.4} before",
        opts.layers,
        if opts.rank > 0 { format!("LoRA rank {}", opts.rank) } else { "all weights".into() },
        train_in.len(),
        val_in.len(),
        best.0
    );
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
            let tracked: Vec<Tensor<2>> = values.iter().map(|p| p.clone().autodiff().require_grad()).collect();
            let batch: Vec<&Input> = idx.iter().map(|&i| &train_in[i]).collect();
            let logits = model.logits(&batch, &params.layers(&tracked, true), &params.head(&tracked, head), &ad);
            let grads = loss(logits, targets(idx.iter().map(|&i| &train.2[i]), &ad)).backward();
            let lr = |k: usize| scale * if k < params.n_layer { opts.lr } else { opts.head_lr };
            let decays = &params.decays;
            let grads = tracked.iter().map(|t| t.grad(&grads)).collect();
            values = adam.step(values, grads, lr, |k| if decays[k] { opts.weight_decay } else { 0.0 });
            bar.inc(idx.len() as u64);
        }
        bar.finish_and_clear();
        let vl = val_loss(&values)?;
        eprintln!("finetune: epoch {epoch}: val loss {vl:.4} ({:.0} s)", clock.elapsed().as_secs_f64());
        if vl < best.0 {
            best = (vl, epoch, values.clone());
        }
    }
    let (val_loss, best_epoch, values) = best;
    let layers = names.iter().flatten().zip(params.layers(&values, false).into_iter().flatten()).map(|((name, transposed), value)| NamedParam { name: name.clone(), value, transposed: *transposed }).collect();
    let tuned = Tuned { layers, stored: params.stored(&values, &names), head: params.head(&values, head) };
    Ok((tuned, FineTuneStats { epochs: opts.epochs, best_epoch, val_loss, trainable, seconds: clock.elapsed().as_secs_f64() }))
}

/// Batches of inputs of similar length (less padding), each of at most `batch`; visited in a shuffled
/// order each epoch.
fn length_batches(inputs: &[Input], batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&i| inputs[i].len);
    order.chunks(batch.max(1)).map(<[usize]>::to_vec).collect()
}

/// Predicted probabilities of the tuned student for texts (features: the cached per-layer pooling).
pub fn predict(enc: &Encoder, spec: &PooledHead, tuned: &Tuned, texts: &[String], pooled_all: &[f32]) -> Result<Vec<Vec<f32>>> {
    let n_layers = enc.config().num_hidden_layers;
    let top = tuned.layers.len() / enc.model().layer_params(0).len().max(1);
    let from = n_layers - top;
    let ins = inputs(enc, texts, pooled_all, from, &spec.layers, "states test")?;
    let model = Model { enc, spec, from, hidden: enc.config().hidden_size };
    let per_layer = enc.model().layer_params(0).len();
    let layers: Vec<Vec<Tensor<2>>> = tuned.layers.chunks(per_layer).map(|c| c.iter().map(|p| p.value.clone()).collect()).collect();
    let device = enc.model().device().clone();
    let mut out = Vec::with_capacity(ins.len());
    for chunk in ins.chunks(32) {
        let batch: Vec<&Input> = chunk.iter().collect();
        let p = burn::tensor::activation::softmax(model.logits(&batch, &layers, &tuned.head, &device), 1);
        let c = tuned.head.classes();
        out.extend(block_on(read_f32(p))?.chunks_exact(c).map(<[f32]>::to_vec));
    }
    Ok(out)
}
