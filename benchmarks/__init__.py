"""Benchmarks of blobstore, each measured side by side with a baseline in the same run.

Run them with ``python -m benchmarks [--quick|--full] [--only P1,P3] [--json PATH]``.

The machine they run on is shared and noisy, so no figure is an absolute
speed: every benchmark times a *baseline* (the cheapest way to do the same
work with the same driver, backend or library) and the *subject* (blobstore
doing it) on the same data, alternating the two for several rounds (ABBA
order), and reports the median of the per-round ratios.

=====  =================================================================  ===============
id     subject                                                            module
=====  =================================================================  ===============
P1     puts/s of 4 KiB blobs whose bytes already exist (dedup hits)       dedup_puts
P2     unique put throughput, 1 MiB and 64 MiB, local directory and S3    unique_puts
P3     put of a 256 MiB file whose bytes already exist                    large_dedup
P4     peak RSS of a streamed 1 GiB put and get                           memory
P5     a page of 1000 keys deep inside 1,000,000 keys                     listing
P6     the cost report over 1,000,000 references                          report_scale
P7     32 concurrent puts of identical bytes                              contention
P8     GC reclaiming 100,000 unreferenced blobs                           gc_reclaim
I1     import of 10,000 files of 64 KiB (30% duplicates) vs ``cp -r``     import_files
I2     ``import --dry-run`` of a 1 GiB tree vs BLAKE3 alone               dry_run
=====  =================================================================  ===============

Each module has ``async def run(ctx, sizes=None) -> list[Row]`` (see
:mod:`benchmarks.harness`); :mod:`benchmarks.runner` runs them and writes the
table and the JSON.
"""
