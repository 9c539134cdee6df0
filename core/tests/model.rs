//! Model construction, output ranges and learning for every backbone.

mod common;

use adaftr_core::config::{Backbone, ClMode};
use adaftr_core::model::AdaFtr;
use adaftr_core::nn::init::seeded_var_builder;
use adaftr_core::train::Trainer;
use candle_core::{Device, Tensor};
use common::*;

#[test]
fn every_backbone_builds_and_gives_probabilities_and_bounded_tau() {
    let schema = tiny_schema();
    let ds = learnable_dataset(&schema, 50, 1);
    let dev = Device::Cpu;
    let b = ds.range_batch(0, 50, &dev).unwrap();
    for backbone in Backbone::ALL {
        let mut cfg = small_config(backbone);
        cfg.model.tau_min = 0.1;
        cfg.model.tau_max = 0.7;
        let (vb, params) = seeded_var_builder(3, &dev);
        let m = AdaFtr::new(&cfg.model, &cfg.loss, &schema.cardinalities(), 2, vb).unwrap();
        assert!(!params.is_empty());
        // Blow the numerics up so the relatedness logit saturates: tau must stay in bounds.
        let wild = (b.num.clone() * 1e4).unwrap();
        for num in [&b.num, &wild] {
            let o = m.forward(&b.cat, num).unwrap();
            let tau: Vec<f32> = o.tau.unwrap().to_vec1().unwrap();
            assert!(tau.iter().all(|&t| (0.1..=0.7).contains(&t)), "{backbone:?}: {tau:?}");
            let pctr: Vec<f32> = o.pctr.to_vec1().unwrap();
            let pcvr: Vec<f32> = o.pcvr.to_vec1().unwrap();
            let pctcvr: Vec<f32> = o.pctcvr.to_vec1().unwrap();
            for i in 0..50 {
                assert!((0.0..=1.0).contains(&pctr[i]) && (0.0..=1.0).contains(&pcvr[i]));
                assert!((pctcvr[i] - pctr[i] * pcvr[i]).abs() < 1e-6);
            }
            assert_eq!(o.h_ctr.dims(), &[50, 6]);
            assert_eq!(o.h_cvr.dims(), &[50, 6]);
        }
    }
}

#[test]
fn tau_modes() {
    let schema = tiny_schema();
    let dev = Device::Cpu;
    let cat = Tensor::new(&[[1u32, 2, 0], [3, 5, 2]], &dev).unwrap();
    let num = Tensor::new(&[[0.5f32, 0.1], [0.2, 0.9]], &dev).unwrap();
    let mut cfg = small_config(Backbone::SharedBottom);
    cfg.loss.cl = ClMode::Fixed;
    cfg.loss.fixed_tau = 0.3;
    let (vb, params) = seeded_var_builder(3, &dev);
    let m = AdaFtr::new(&cfg.model, &cfg.loss, &schema.cardinalities(), 2, vb).unwrap();
    assert_eq!(m.forward(&cat, &num).unwrap().tau.unwrap().to_vec1::<f32>().unwrap(), vec![0.3, 0.3]);
    assert!(params.sorted().iter().all(|(n, _)| !n.starts_with("relatedness")));
    cfg.loss.cl = ClMode::None;
    let (vb, _) = seeded_var_builder(3, &dev);
    let m = AdaFtr::new(&cfg.model, &cfg.loss, &schema.cardinalities(), 2, vb).unwrap();
    assert!(m.forward(&cat, &num).unwrap().tau.is_none());
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let schema = tiny_schema();
    let dev = Device::Cpu;
    let cfg = small_config(Backbone::Mmoe);
    let build = |seed| {
        let (vb, p) = seeded_var_builder(seed, &dev);
        AdaFtr::new(&cfg.model, &cfg.loss, &schema.cardinalities(), 2, vb).unwrap();
        p.snapshot()
            .unwrap()
            .into_iter()
            .map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(build(5), build(5));
    assert_ne!(build(5), build(6));
}

#[test]
fn a_few_steps_lower_the_loss_for_every_backbone() {
    let schema = tiny_schema();
    let ds = learnable_dataset(&schema, 256, 2);
    let dev = Device::Cpu;
    let batch = ds.range_batch(0, 256, &dev).unwrap();
    for backbone in Backbone::ALL {
        let mut cfg = small_config(backbone);
        cfg.train.lr = 1e-2;
        let mut t = Trainer::new(cfg, schema.clone(), &dev).unwrap();
        let first = t.train_step(&batch).unwrap();
        let mut last = first;
        for _ in 0..30 {
            last = t.train_step(&batch).unwrap();
        }
        assert!(first.cl.is_some());
        assert!(last.total < first.total * 0.9, "{backbone:?}: loss {:.4} -> {:.4}", first.total, last.total);
    }
}

#[test]
fn projection_heads_and_detached_relatedness_input() {
    let schema = tiny_schema();
    let dev = Device::Cpu;
    let ds = learnable_dataset(&schema, 32, 7);
    let b = ds.range_batch(0, 32, &dev).unwrap();
    let mut cfg = small_config(Backbone::SharedBottom);
    cfg.model.projection = vec![5, 4];
    for detach in [false, true] {
        cfg.model.relatedness_detach_input = detach;
        let (vb, params) = seeded_var_builder(3, &dev);
        let m = AdaFtr::new(&cfg.model, &cfg.loss, &schema.cardinalities(), 2, vb).unwrap();
        assert!(params.get("projection_ctr.1.weight").is_some() && params.get("projection_cvr.0.bias").is_some());
        let o = m.forward(&b.cat, &b.num).unwrap();
        assert_eq!(o.z_ctr.dims(), &[32, 4]);
        // The projection's last layer is linear: outputs take both signs.
        let z: Vec<f32> = o.z_ctr.flatten_all().unwrap().to_vec1().unwrap();
        assert!(z.iter().any(|&x| x < 0.0) && z.iter().any(|&x| x > 0.0));
        // Gradient of tau alone reaches the towers only without the stop-gradient.
        let grads = o.tau.unwrap().sum_all().unwrap().backward().unwrap();
        let tower = params.get("tower_ctr.0.weight").unwrap();
        let reaches = grads
            .get(tower.as_tensor())
            .is_some_and(|g| g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
        assert_eq!(reaches, !detach, "detach = {detach}");
        assert!(grads.get(params.get("relatedness.out.weight").unwrap().as_tensor()).is_some());
    }
}

#[test]
fn tau_prior_pulls_the_relatedness_logit_to_its_centre() {
    let schema = tiny_schema();
    let dev = Device::Cpu;
    let ds = learnable_dataset(&schema, 128, 8);
    let batch = ds.range_batch(0, 128, &dev).unwrap();
    let mut cfg = small_config(Backbone::SharedBottom);
    cfg.model.tau_min = 0.05;
    cfg.model.tau_max = 1.0;
    cfg.loss.tau_prior_weight = 50.0;
    cfg.loss.tau_prior_mean = 0.5;
    cfg.train.lr = 1e-2;
    let mut t = Trainer::new(cfg, schema, &dev).unwrap();
    let first = t.train_step(&batch).unwrap();
    assert!(first.tau_prior.is_some());
    for _ in 0..200 {
        t.train_step(&batch).unwrap();
    }
    let tau: Vec<f32> = t.model().forward(&batch.cat, &batch.num).unwrap().tau.unwrap().to_vec1().unwrap();
    let mean = tau.iter().sum::<f32>() / tau.len() as f32;
    assert!((mean - 0.5).abs() < 0.05, "mean tau {mean}");
}

/// `readout` learns tau beside the plain backbone without touching it: after the same
/// steps from the same seed, its predictions are `none`'s bit for bit, its tau has moved,
/// and it carries no projection heads.
#[test]
fn readout_predicts_exactly_as_the_plain_backbone_and_learns_tau() {
    let schema = tiny_schema();
    let dev = Device::Cpu;
    let ds = learnable_dataset(&schema, 256, 9);
    let batch = ds.range_batch(0, 256, &dev).unwrap();
    for backbone in [Backbone::SharedBottom, Backbone::Ple] {
        let trained = |cl: ClMode| {
            let mut cfg = small_config(backbone);
            cfg.loss.cl = cl;
            cfg.model.projection = vec![4];
            cfg.train.lr = 1e-2;
            let mut t = Trainer::new(cfg, schema.clone(), &dev).unwrap();
            let tau0 = t.model().forward(&batch.cat, &batch.num).unwrap().tau;
            let mut last = None;
            for _ in 0..20 {
                last = Some(t.train_step(&batch).unwrap());
            }
            (t, tau0, last.unwrap())
        };
        let (plain, _, _) = trained(ClMode::None);
        let (read, tau0, losses) = trained(ClMode::Readout);
        assert!(losses.cl.is_none() && losses.aux.is_some(), "{backbone:?}: no contrastive term, an auxiliary one");
        assert!(read.params().get("projection_ctr.0.weight").is_none());
        let (a, b) = (
            plain.model().forward(&batch.cat, &batch.num).unwrap(),
            read.model().forward(&batch.cat, &batch.num).unwrap(),
        );
        for (x, y) in [(&a.pctr, &b.pctr), (&a.pcvr, &b.pcvr), (&a.pctcvr, &b.pctcvr)] {
            assert_eq!(x.to_vec1::<f32>().unwrap(), y.to_vec1::<f32>().unwrap(), "{backbone:?}");
        }
        let (t0, t1): (Vec<f32>, Vec<f32>) = (tau0.unwrap().to_vec1().unwrap(), b.tau.unwrap().to_vec1().unwrap());
        assert!(t0.iter().zip(&t1).any(|(p, q)| p != q), "{backbone:?}: tau learned nothing");
    }
}

/// A model built for inference (a loaded bundle's: weights read without a backward graph)
/// predicts exactly what the trainable model built from the same weights predicts, for
/// every backbone, on one instance, a few and a batch; and its outputs record no graph.
#[test]
fn the_inference_model_predicts_the_trainable_models_bits() {
    let schema = tiny_schema();
    let ds = learnable_dataset(&schema, 40, 2);
    let dev = Device::Cpu;
    for backbone in Backbone::ALL {
        let cfg = small_config(backbone);
        let (_, params) = AdaFtr::seeded(&cfg, &schema, 5, &dev).unwrap();
        let trainable = AdaFtr::from_params(&cfg, &schema, &params, &dev).unwrap();
        let frozen = AdaFtr::for_inference(&cfg, &schema, &params, &dev).unwrap();
        for rows in [1, 3, 40] {
            let b = ds.range_batch(0, rows, &dev).unwrap();
            let (a, f) = (trainable.forward(&b.cat, &b.num).unwrap(), frozen.forward(&b.cat, &b.num).unwrap());
            let bits = |t: &Tensor| t.to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.pctr), bits(&f.pctr), "{backbone:?}, {rows} rows: pCTR");
            assert_eq!(bits(&a.pcvr), bits(&f.pcvr), "{backbone:?}, {rows} rows: pCVR");
            assert_eq!(a.tau.as_ref().map(bits), f.tau.as_ref().map(bits), "{backbone:?}, {rows} rows: tau");
            assert!(a.pctr.track_op() && !f.pctr.track_op(), "{backbone:?}: only the trainable model records a graph");
        }
    }
}

/// One row of the tiny schema: its categorical ids and its two numerics.
type Row = (Vec<u32>, [f32; 2]);

/// A what-if batch (the instance with one or two features changed, as the demo's sweep,
/// sensitivity panel and relatedness map build them) takes the inference model's
/// shared-rows path; every row must predict what it predicts alone, for every backbone.
#[test]
fn what_if_batches_predict_each_row_as_alone() {
    let schema = tiny_schema();
    let dev = Device::Cpu;
    let cards = schema.cardinalities();
    let base_cat: Vec<u32> = vec![1, 2, 1];
    let base_num = [0.3f32, -0.4];
    let mut batches: Vec<(&str, Vec<Row>)> = Vec::new();
    let values = |n: usize| (0..n).map(move |i| -3.0 + 6.0 * i as f32 / (n - 1) as f32);
    batches.push(("sweep", values(40).map(|v| (base_cat.clone(), [v, base_num[1]])).collect()));
    let map = values(16).flat_map(|y| values(16).map(move |x| [x, y]));
    batches.push(("map", map.map(|num| (base_cat.clone(), num)).collect()));
    let mut sensitivity = vec![(base_cat.clone(), base_num)];
    for (f, &card) in cards.iter().enumerate() {
        for id in 0..card as u32 {
            let mut cat = base_cat.clone();
            cat[f] = id;
            sensitivity.push((cat, base_num));
        }
    }
    for f in 0..2 {
        sensitivity.extend(values(12).map(|v| {
            let mut num = base_num;
            num[f] = v;
            (base_cat.clone(), num)
        }));
    }
    batches.push(("sensitivity", sensitivity));
    let tensors = |rows: &[Row]| {
        let cat: Vec<u32> = rows.iter().flat_map(|(c, _)| c.clone()).collect();
        let num: Vec<f32> = rows.iter().flat_map(|(_, n)| *n).collect();
        (
            Tensor::from_vec(cat, (rows.len(), cards.len()), &dev).unwrap(),
            Tensor::from_vec(num, (rows.len(), 2), &dev).unwrap(),
        )
    };
    for backbone in Backbone::ALL {
        let mut cfg = small_config(backbone);
        cfg.model.embedding_dim = 8;
        cfg.model.bottom = vec![48, 24];
        cfg.model.tower = vec![16, 8];
        cfg.model.relatedness_hidden = 16;
        let (_, params) = AdaFtr::seeded(&cfg, &schema, 11, &dev).unwrap();
        let model = AdaFtr::for_inference(&cfg, &schema, &params, &dev).unwrap();
        for (name, rows) in &batches {
            let (cat, num) = tensors(rows);
            let batch = model.forward(&cat, &num).unwrap();
            let outputs = |o: &adaftr_core::model::Outputs| {
                let mut v = vec![o.pctr.to_vec1::<f32>().unwrap(), o.pcvr.to_vec1::<f32>().unwrap()];
                v.extend(o.tau.as_ref().map(|t| t.to_vec1::<f32>().unwrap()));
                v
            };
            let got = outputs(&batch);
            for (r, row) in rows.iter().enumerate() {
                let (cat, num) = tensors(std::slice::from_ref(row));
                let alone = outputs(&model.forward(&cat, &num).unwrap());
                for (o, (g, a)) in got.iter().zip(&alone).enumerate() {
                    let err = (g[r] - a[0]).abs();
                    assert!(err < 1e-5, "{backbone:?}, {name}, row {r}, output {o}: {} batched, {} alone", g[r], a[0]);
                }
            }
        }
    }
}
