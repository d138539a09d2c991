# Bar charts of bench/proxy_compare.sh: requests/s and p99 per contender, one panel per
# workload; bars are the medians over rounds, error bars the min and max.
#
#   gnuplot -e "data='DIR/proxy-plot.dat'; out='DIR'" bench/plot_proxy.gp
#
# Writes DIR/proxy-rps.png and DIR/proxy-p99.png. The data (bench/summarize_proxy.py) has one
# block per workload, two blank lines apart, and one row per contender:
#   "title" contender rps_median rps_min rps_max p99_median p99_min p99_max   (p99 in ms)

# pngcairo draws smoother text and lines; the libgd png terminal is the fallback.
terminal = strstrt(GPVAL_TERMINALS, "pngcairo") > 0 ? "pngcairo noenhanced font ',9'" : "png noenhanced"

stats data using 3 nooutput
panels = STATS_blocks
columns = panels < 3 ? panels : 3
rows = (panels + columns - 1) / columns

set style fill solid 0.75 border -1
set boxwidth 0.65
set grid ytics
set yrange [0:*]
stats data index 0 using 3 nooutput
contenders = STATS_records
set xrange [-0.6:contenders - 0.4] # contenders at x = 0, 1, ...
set xtics rotate by -30 nomirror
set ytics nomirror
unset key

# Two charts: requests/s (columns 3-5), then p99 (columns 6-8).
do for [chart = 1:2] {
  median = chart == 1 ? 3 : 6
  eval sprintf("set terminal %s size %d,%d", terminal, 380 * columns, 300 * rows + 40)
  set output sprintf("%s/%s", out, chart == 1 ? "proxy-rps.png" : "proxy-p99.png")
  set ylabel (chart == 1 ? "requests/s" : "p99 latency (ms)")
  set multiplot layout rows, columns title (chart == 1 ? \
    "Requests/s per contender (median, min–max over rounds)" : \
    "p99 latency per contender (median, min–max over rounds)")
  do for [k = 0:panels - 1] {
    stats data index k using (workload = strcol(1), column(median + 2)) nooutput
    set title workload
    # 12k rather than 12000 for large axes; plain numbers (0.5, 20) otherwise.
    if (STATS_max >= 10000) { set format y "%.0s%c" } else { set format y "%g" }
    plot data index k using 0:(column(median)):($0 + 1):xtic(2) with boxes linecolor variable, \
         data index k using 0:(column(median)):(column(median + 1)):(column(median + 2)) \
           with yerrorbars linecolor rgb "black" pointtype 7 pointsize 0.4
  }
  unset multiplot
  set output
}
