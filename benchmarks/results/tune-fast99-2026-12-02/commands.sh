# The choice of fast99 rerun with `mnistlab tune` (issue 22), 2026-12-02, on this project's 2-core AMD EPYC VM,
# torch 2.14.1, shared with other engineers' jobs throughout: the load average was 8 to 11 (2 cores), so every
# trial trained several times slower than alone (log.txt, and loadavg_start/_end of each trial in summary.json).
# Two sessions on one study, run in runs/ of an empty folder (`/usr/bin/time -v` around each):
mnistlab tune --study fast99-rerun --recipe default --epochs 0.6 --evals-per-epoch 4 --val 10000 \
    --objective time-to:0.988 --device cpu --trials 80 --timeout 1800 --workers 1
# 04:05:28-04:19:35 UTC (14 min 6 s): trials 0-2. Killed (SIGTERM, then SIGKILL of the tune) during trial 3, to
# start TPE after 5 trials instead of 10 (src/mnistlab/tune_study.py); the same command resumed the study, and
# marked trial 3 failed as lost:
mnistlab tune --study fast99-rerun --recipe default --epochs 0.6 --evals-per-epoch 4 --val 10000 \
    --objective time-to:0.988 --device cpu --trials 80 --timeout 950 --workers 1
# 04:19:38-04:36:20 UTC (16 min 42 s): trials 4-10; it wrote summary.json (copied here). 30 min 48 s in all.
# An earlier start with --epochs 0.8 (one trial, 8 min, 98.70% val) was stopped and is not part of this study.
