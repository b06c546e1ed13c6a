//! Summaries per attribute and method, as markdown and SVG.

use std::path::Path;

use serde::Serialize;
use serde_json::json;

use crate::base::error::{Error, Result};
use crate::apps::steer_eval::run::Eval;
use crate::apps::steer_eval::score::{CellResult, Rate};

/// Per-cell summary for one attribute's judge.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub attribute: String,
    pub method: String,
    pub strength: Option<f32>,
    pub n: usize,
    pub success: Rate,
    /// Judged the target and not degenerate: what a user would accept.
    pub fluent_success: Rate,
    pub mean_target_probability: f64,
    pub median_perplexity: Option<f64>,
    pub degenerate: Rate,
    /// Mean similarity to the prompt (open prompts) and to the source sentence (rewrites).
    pub similarity_prompt: f64,
    pub similarity_source: f64,
    pub similarity_unsteered: f64,
    pub seconds: f64,
    pub tokens: usize,
}

/// Success: the judge's most likely label is the target (threshold 0.5 for two labels) and the answer
/// is not empty.
pub fn summarize(results: &[CellResult], attribute: &str) -> Vec<Summary> {
    let mean = |v: Vec<f64>| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    results
        .iter()
        .filter(|r| r.cell.attribute.as_deref().is_none_or(|a| a == attribute))
        .map(|r| {
            let a = &r.answers;
            let success = a.iter().filter(|x| !x.text.is_empty() && x.judge.get(attribute).is_some_and(|&p| p > 0.5)).count();
            let mut ppl: Vec<f64> = a.iter().filter_map(|x| x.perplexity).collect();
            ppl.sort_by(f64::total_cmp);
            Summary {
                attribute: attribute.to_string(),
                method: r.cell.method.clone(),
                strength: r.cell.strength,
                n: a.len(),
                success: Rate::of(success, a.len()),
                fluent_success: Rate::of(a.iter().filter(|x| !x.text.is_empty() && !x.degenerate && x.judge.get(attribute).is_some_and(|&p| p > 0.5)).count(), a.len()),
                mean_target_probability: mean(a.iter().map(|x| x.judge.get(attribute).copied().unwrap_or(0.0) as f64).collect()),
                median_perplexity: (!ppl.is_empty()).then(|| ppl[ppl.len() / 2]),
                degenerate: Rate::of(a.iter().filter(|x| x.degenerate).count(), a.len()),
                similarity_prompt: mean(a.iter().filter(|x| x.kind != "rewrite").map(|x| x.similarity_prompt as f64).collect()),
                similarity_source: mean(a.iter().filter(|x| x.kind == "rewrite").map(|x| x.similarity_prompt as f64).collect()),
                similarity_unsteered: mean(a.iter().map(|x| x.similarity_unsteered as f64).collect()),
                seconds: r.seconds,
                tokens: a.iter().map(|x| x.tokens).sum(),
            }
        })
        .collect()
}

fn strength_label(s: &Summary) -> String {
    match s.strength {
        Some(x) if x < 0.0 => format!("−v {}", -x),
        Some(x) => format!("{x}"),
        None => "–".into(),
    }
}

/// docs/steering.md's table for one attribute.
pub fn markdown(summaries: &[Summary]) -> String {
    let mut t = String::from("| method | strength | n | success (95 % CI) | … and not degenerate | mean P(target) | median perplexity (greedy) | degenerate | sim. prompt | sim. source (rewrites) | sim. unsteered |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for s in summaries {
        t += &format!(
            "| {} | {} | {} | {:.2} ({:.2}–{:.2}) | {:.2} ({:.2}–{:.2}) | {:.2} | {} | {:.2} | {:.2} | {:.2} | {} |\n",
            s.method,
            strength_label(s),
            s.n,
            s.success.rate,
            s.success.low,
            s.success.high,
            s.fluent_success.rate,
            s.fluent_success.low,
            s.fluent_success.high,
            s.mean_target_probability,
            s.median_perplexity.map_or("–".into(), |p| format!("{p:.1}")),
            s.degenerate.rate,
            s.similarity_prompt,
            s.similarity_source,
            if s.method == "unsteered" { "1".into() } else { format!("{:.2}", s.similarity_unsteered) },
        );
    }
    t
}

/// Success against drift (1 − MiniLM similarity to the unsteered answer of the same prompt and
/// decoding), one panel per attribute: each vector method a line through its strengths (−v dashed), the
/// baselines single points; a ring marks a cell where ≥ 10 % of the answers are degenerate.
pub fn svg(panels: &[(String, Vec<Summary>)]) -> String {
    let (w, h, pad) = (420.0, 320.0, 48.0);
    let colors = [("unsteered", "#555"), ("prompt", "#1b9e77"), ("icl", "#7570b3"), ("icv-pca", "#d95f02"), ("icv-mean", "#e7298a"), ("residual", "#1f78b4")];
    let color = |m: &str| colors.iter().find(|c| c.0 == m).map_or("#000", |c| c.1);
    let drift = |r: &Summary| if r.method == "unsteered" { 0.0 } else { (1.0 - r.similarity_unsteered).clamp(0.0, 1.0) };
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n", w * panels.len() as f64, h + 40.0);
    for (i, (name, rows)) in panels.iter().enumerate() {
        let ox = i as f64 * w;
        let x = |v: f64| ox + pad + v * (w - 2.0 * pad);
        let y = |v: f64| h - pad + 20.0 - v * (h - 2.0 * pad);
        s += &format!("<text x=\"{}\" y=\"16\" font-weight=\"bold\">{name}: judge success vs drift from the unsteered answer</text>\n", ox + pad);
        s += &format!("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/>\n", x(0.0), y(0.0), x(1.0), y(0.0), x(0.0), y(0.0), x(0.0), y(1.0));
        for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
            s += &format!("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{t}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{t}</text>\n", x(t), y(0.0) + 14.0, x(0.0) - 4.0, y(t) + 4.0);
        }
        s += &format!("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">drift: 1 − similarity to the unsteered answer</text>\n", x(0.5), y(0.0) + 28.0);
        s += &format!("<text transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\">success rate</text>\n", ox + 12.0, y(0.5));
        for (m, c) in colors {
            for sign in [1.0f32, -1.0] {
                let mut pts: Vec<&Summary> = rows.iter().filter(|r| r.method == m && r.strength.unwrap_or(0.0) * sign >= 0.0).collect();
                pts.sort_by(|a, b| a.strength.unwrap_or(0.0).abs().total_cmp(&b.strength.unwrap_or(0.0).abs()));
                if pts.len() > 1 {
                    let line: Vec<String> = pts.iter().map(|p| format!("{:.1},{:.1}", x(drift(p)), y(p.success.rate))).collect();
                    let dash = if sign < 0.0 { " stroke-dasharray=\"4 3\"" } else { "" };
                    s += &format!("<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\"{dash}/>\n", line.join(" "));
                }
            }
        }
        for r in rows {
            let c = color(&r.method);
            s += &format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{c}\"><title>{} {}: success {:.2}, drift {:.2}, degenerate {:.2}</title></circle>\n", x(drift(r)), y(r.success.rate), r.method, strength_label(r), r.success.rate, drift(r), r.degenerate.rate);
            if r.degenerate.rate >= 0.1 {
                s += &format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"7\" fill=\"none\" stroke=\"#c00\"/>\n", x(drift(r)), y(r.success.rate));
            }
            let label = if r.strength.is_some() { strength_label(r) } else { r.method.clone() };
            s += &format!("<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{c}\" font-size=\"9\">{label}</text>\n", x(drift(r)) + 5.0, y(r.success.rate) - 4.0);
        }
        for (k, (m, c)) in colors.iter().enumerate() {
            s += &format!("<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{c}\"/><text x=\"{}\" y=\"{}\">{m}</text>\n", ox + w - 110.0, 170.0 + k as f64 * 14.0, ox + w - 96.0, 179.0 + k as f64 * 14.0);
        }
        s += &format!("<circle cx=\"{}\" cy=\"{}\" r=\"5\" fill=\"none\" stroke=\"#c00\"/><text x=\"{}\" y=\"{}\">≥ 10 % degenerate</text>\n", ox + w - 105.0, 175.0 + colors.len() as f64 * 14.0, ox + w - 96.0, 179.0 + colors.len() as f64 * 14.0);
    }
    s + "</svg>\n"
}

/// `veer steer-eval`: run the benchmark of `config` (or, with `replot`, re-read `out`.json) and write
/// `out`.{json,md,svg}. `device` is asked for only when something runs.
pub fn steer_eval(config: &Path, out: &Path, quick: bool, replot: bool, device: impl FnOnce() -> Result<burn::tensor::Device>) -> Result<serde_json::Value> {
    let with = |ext: &str| out.with_extension(ext);
    let t0 = std::time::Instant::now();
    let mut report = if replot {
        let name = with("json").display().to_string();
        serde_json::from_slice::<serde_json::Value>(&read(&with("json"))?).map_err(|e| Error::file(&name, e))?
    } else {
        let eval = Eval::load(config, quick, &device()?)?;
        let judges = eval.validate_judges(config.parent().unwrap_or(Path::new(".")))?;
        eprintln!("judges: {}", serde_json::to_string(&judges).unwrap_or_default());
        let cells = eval.cells().len();
        let mut done = 0;
        let results = eval.run(|r| {
            done += 1;
            let tokens: usize = r.answers.iter().map(|a| a.tokens).sum();
            eprintln!("[{done}/{cells}] {} {} {:?}: {} answers, {tokens} tokens in {:.0} s ({:.1} tokens/s)", r.cell.attribute.as_deref().unwrap_or("-"), r.cell.method, r.cell.strength, r.answers.len(), r.seconds, tokens as f64 / r.seconds);
        })?;
        let latency = if quick { Vec::new() } else { eval.latency()? };
        let attributes: Vec<String> = eval.attributes().into_iter().map(|(name, _)| name).collect();
        json!({"config": config, "quick": quick, "seconds": t0.elapsed().as_secs_f64(), "attributes": attributes, "judges": judges, "latency": latency, "cells": results})
    };
    let results: Vec<CellResult> = serde_json::from_value(report["cells"].clone()).map_err(|e| Error::file(with("json").display().to_string(), format!("cells: {e}")))?;
    let attributes: Vec<String> = serde_json::from_value(report["attributes"].clone()).map_err(|e| Error::file(with("json").display().to_string(), format!("attributes: {e}")))?;
    let panels: Vec<(String, Vec<Summary>)> = attributes.iter().map(|name| (name.clone(), summarize(&results, name))).collect();
    let mut md = String::new();
    for (name, rows) in &panels {
        md += &format!("### {name}\n\n{}\n", markdown(rows));
    }
    let latency = report["latency"].as_array().cloned().unwrap_or_default();
    if !latency.is_empty() {
        md += "### cost per method (one prompt at a time, greedy, 32 tokens)\n\n| method | prompt tokens | prefill ms | decode ms/token | extra ms/token |\n|---|---|---|---|---|\n";
        for l in &latency {
            md += &format!("| {} | {:.0} | {:.0} | {:.1} | {:+.1} |\n", l["method"].as_str().unwrap_or(""), l["prompt_tokens"].as_f64().unwrap_or(0.0), l["prefill_ms"].as_f64().unwrap_or(0.0), l["decode_ms_per_token"].as_f64().unwrap_or(0.0), l["extra_ms_per_token"].as_f64().unwrap_or(0.0));
        }
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir.display().to_string(), e))?;
    }
    let summary: Vec<&Summary> = panels.iter().flat_map(|(_, rows)| rows).collect();
    report["summary"] = json!(summary);
    write(&with("json"), serde_json::to_string_pretty(&report).map_err(|e| Error::Invalid(e.to_string()))?.as_bytes())?;
    write(&with("md"), md.as_bytes())?;
    write(&with("svg"), svg(&panels).as_bytes())?;
    println!("{md}");
    Ok(json!({"out": out, "seconds": t0.elapsed().as_secs_f64(), "judges": report["judges"], "summary": summary}))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::file(path.display().to_string(), e))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::file(path.display().to_string(), e))
}
