# The choice of fast99 rerun with `mnistlab tune`, from fast99 itself, 2026-12-02 05:43-05:59 UTC, this project's
# 2-core AMD EPYC, torch 2.14.1, the machine otherwise idle (the lead's session; nothing else running):
mnistlab tune --study fast99-from-fast99 --recipe fast99 --epochs 0.6 --evals-per-epoch 4 --val 10000 \
    --objective time-to:0.988 --device cpu --trials 80 --timeout 960 --workers 1
mnistlab tune --study fast99-from-fast99 --best best.json
# Then on the test set, seeds 1-3, alternating (cmp.txt): for each seed, for r in fast99 best.json:
#   mnistlab train --recipe $r --seed $s --device cpu --out cmp/$r-s$s --no-plots --quiet
