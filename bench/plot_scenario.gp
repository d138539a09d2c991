# One variant of the "bad day" scenario (bench/scenario.sh): per-second p99 and max latency (log
# scale), client errors and attempts sent to the bad backend per second over time, one line per
# contender, the fault time marked.
# bench/summarize_scenario.py calls it with:
#   gnuplot -e "dir='...'; variant='a'; contenders='fusebox nginx haproxy'; fault=15; \
#               out='.../scenario-a.png'; title='...'" bench/plot_scenario.gp
# It reads dir/timeline-<variant>-<contender>.tsv (second, p99_ms, max_ms, errors, requests,
# bad_attempts, ...).
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
  set terminal pngcairo size 1000,1250 font "Sans,10"
} else {
  set terminal png size 1000,1250
}
set output out
set datafile separator "\t"
set key top left autotitle columnhead
file(c) = sprintf("%s/timeline-%s-%s.tsv", dir, variant, c)
set multiplot layout 4,1 title title
set lmargin 10
set grid
set xrange [0:*]
set arrow 1 from fault, graph 0 to fault, graph 1 nohead dashtype 2 linecolor rgb "red"
set label 1 "fault" at fault, graph 0.95 offset 0.5,0 textcolor rgb "red"
set logscale y
set ylabel "p99 latency per second (ms)"
set format x ""
plot for [c in contenders] file(c) using ($1 + 0.5):2 with linespoints pointsize 0.5 title c
set ylabel "max latency per second (ms)"
plot for [c in contenders] file(c) using ($1 + 0.5):3 with linespoints pointsize 0.5 title c
unset logscale y
set yrange [0:*]
set ylabel "client errors per second"
set key top right
plot for [c in contenders] file(c) using ($1 + 0.5):4 with linespoints pointsize 0.5 title c
set ylabel "attempts on the bad backend per second"
set xlabel "time (s)"
set format x "%g"
plot for [c in contenders] file(c) using ($1 + 0.5):6 with linespoints pointsize 0.5 title c
unset multiplot
