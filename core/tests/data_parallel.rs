//! Data-parallel training (`train::parallel`) against one process: a group of replicas,
//! here threads exchanging through shared memory, trains the model one process trains on
//! the same batches, in every relatedness mode that can run in a group.

mod common;

use std::sync::{Arc, Barrier, Mutex};

use adaftr_core::config::{Backbone, ClMode, Config, Negatives};
use adaftr_core::data::Dataset;
use adaftr_core::train::parallel::checksum;
use adaftr_core::train::{Collective, Silent, Trainer};
use adaftr_core::Error;
use candle_core::Device;
use common::{learnable_dataset, small_config, tiny_schema};

/// What the ranks of one thread group have posted.
struct Board {
    floats: Vec<Vec<f32>>,
    words: Vec<u64>,
}

/// One rank of a group of threads; every collective is: post, wait for all, read, wait for
/// all (so that nobody posts the next one before everyone has read).
struct Threads {
    rank: usize,
    size: usize,
    board: Arc<Mutex<Board>>,
    barrier: Arc<Barrier>,
}

fn thread_group(size: usize) -> Vec<Threads> {
    let board = Arc::new(Mutex::new(Board { floats: vec![Vec::new(); size], words: vec![0; size] }));
    let barrier = Arc::new(Barrier::new(size));
    (0..size).map(|rank| Threads { rank, size, board: board.clone(), barrier: barrier.clone() }).collect()
}

impl Threads {
    fn exchange<T>(&self, post: impl FnOnce(&mut Board), read: impl FnOnce(&Board) -> T) -> T {
        post(&mut self.board.lock().unwrap());
        self.barrier.wait();
        let out = read(&self.board.lock().unwrap());
        self.barrier.wait();
        out
    }
}

impl Collective for Threads {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn sum(&mut self, buf: &mut [f32]) -> adaftr_core::Result<()> {
        let sum = self.exchange(
            |b| b.floats[self.rank] = buf.to_vec(),
            |b| {
                let mut s = vec![0f32; buf.len()];
                for part in &b.floats {
                    s.iter_mut().zip(part).for_each(|(a, x)| *a += x);
                }
                s
            },
        );
        buf.copy_from_slice(&sum);
        Ok(())
    }

    fn gather(&mut self, local: &[f32], counts: &[usize]) -> adaftr_core::Result<Vec<f32>> {
        assert_eq!(counts[self.rank], local.len());
        Ok(self.exchange(|b| b.floats[self.rank] = local.to_vec(), |b| b.floats.concat()))
    }

    fn gather_u64(&mut self, value: u64) -> adaftr_core::Result<Vec<u64>> {
        Ok(self.exchange(|b| b.words[self.rank] = value, |b| b.words.clone()))
    }
}

fn weights(t: &Trainer) -> Vec<(String, Vec<f32>)> {
    t.params().sorted().into_iter().map(|(n, v)| (n, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())).collect()
}

fn alone(cfg: &Config, train: &Dataset, valid: &Dataset) -> Trainer {
    let mut t = Trainer::new(cfg.clone(), tiny_schema(), &Device::Cpu).unwrap();
    t.fit(train, valid, &mut Silent).unwrap();
    t
}

/// Each rank of a group of `size` threads trains a replica on the same data; their weights.
fn in_group(cfg: &Config, train: &Dataset, valid: &Dataset, size: usize) -> Vec<Vec<(String, Vec<f32>)>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = thread_group(size)
            .into_iter()
            .map(|g| {
                s.spawn(move || {
                    let mut t = Trainer::new(cfg.clone(), tiny_schema(), &Device::Cpu).unwrap();
                    t.join(Box::new(g)).unwrap();
                    t.fit(train, valid, &mut Silent).unwrap();
                    weights(&t)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn max_difference(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> (f32, String) {
    let mut worst = (0f32, String::new());
    for ((name, x), (other, y)) in a.iter().zip(b) {
        assert_eq!(name, other);
        for (p, q) in x.iter().zip(y) {
            let d = (p - q).abs() / (1.0 + p.abs());
            if d > worst.0 {
                worst = (d, name.clone());
            }
        }
    }
    worst
}

/// The configs compared: the default mode, and every term that couples a batch's rows
/// (in-batch and sampled InfoNCE, `transfer`'s batch statistics, the CVR loss over clicked
/// rows, a tau trained through the contrastive term).
fn configs() -> Vec<(&'static str, Config)> {
    let base = {
        let mut c = small_config(Backbone::SharedBottom);
        c.train.batch_size = 45;
        c.train.epochs = 2;
        c
    };
    let with = |f: &dyn Fn(&mut Config)| {
        let mut c = base.clone();
        f(&mut c);
        c
    };
    vec![
        ("readout (the default mode)", with(&|c| c.loss.cl = ClMode::Readout)),
        ("transfer, in-batch InfoNCE", with(&|c| c.loss.cl = ClMode::Transfer)),
        ("joint, CVR loss over clicks, PLE", {
            with(&|c| {
                c.loss.cl = ClMode::Joint;
                c.loss.cvr_click_loss = true;
                c.model.backbone = Backbone::Ple;
            })
        }),
        ("fixed tau, sampled negatives", {
            with(&|c| {
                c.loss.cl = ClMode::Fixed;
                c.loss.negatives = Negatives::Sampled;
                c.loss.sampled_negatives = 7;
            })
        }),
    ]
}

#[test]
fn a_group_trains_the_model_one_process_trains() {
    let schema = tiny_schema();
    // 203 rows in batches of 45: four full batches and a last one of 23, shared unevenly.
    let train = learnable_dataset(&schema, 203, 11);
    let valid = learnable_dataset(&schema, 120, 12);
    for (what, cfg) in configs() {
        let one = weights(&alone(&cfg, &train, &valid));
        for size in [2, 3] {
            let replicas = in_group(&cfg, &train, &valid, size);
            for (r, w) in replicas.iter().enumerate() {
                // Every replica holds the same bits...
                assert_eq!(max_difference(w, &replicas[0]).0, 0.0, "{what}: rank {r} of {size} drifted");
            }
            // ...and they are one process's weights up to float rounding (10 steps).
            let (d, name) = max_difference(&replicas[0], &one);
            assert!(d < 2e-5, "{what}, {size} ranks: `{name}` differs from one process by {d:e}");
        }
    }
}

#[test]
fn a_group_refuses_what_it_cannot_share() {
    let mut cfg = small_config(Backbone::SharedBottom);
    cfg.loss.cl = ClMode::Meta;
    let mut t = Trainer::new(cfg, tiny_schema(), &Device::Cpu).unwrap();
    let err = t.join(Box::new(thread_group(1).pop().unwrap())).map(|_| ());
    assert!(err.is_ok(), "a group of one is one process");
    let mut cfg = small_config(Backbone::SharedBottom);
    cfg.loss.cl = ClMode::Meta;
    let results = std::thread::scope(|s| {
        let hs: Vec<_> = thread_group(2)
            .into_iter()
            .map(|g| {
                let cfg = cfg.clone();
                s.spawn(move || {
                    let mut t = Trainer::new(cfg, tiny_schema(), &Device::Cpu).unwrap();
                    t.join(Box::new(g)).map_err(|e| e.to_string())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    for r in results {
        assert!(r.as_ref().is_err_and(|e| e.contains("meta")), "{r:?}");
    }
}

#[test]
fn replicas_that_start_apart_are_refused() {
    let results = std::thread::scope(|s| {
        let hs: Vec<_> = thread_group(2)
            .into_iter()
            .map(|g| {
                s.spawn(move || {
                    let mut cfg = small_config(Backbone::SharedBottom);
                    cfg.train.seed = 100 + g.rank() as u64;
                    let mut t = Trainer::new(cfg, tiny_schema(), &Device::Cpu).unwrap();
                    let before = checksum(t.params()).unwrap();
                    (before, t.join(Box::new(g)))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    assert_ne!(results[0].0, results[1].0);
    for (_, r) in results {
        match r {
            Err(Error::Parallel(msg)) => assert!(msg.contains("rank 1") && msg.contains("same seed"), "{msg}"),
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
    }
}
