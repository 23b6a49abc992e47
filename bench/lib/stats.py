"""Statistics shared by the benchmark reports (gateway_report.py, relay_baseline.sh)."""
import math
import statistics

# Two-sided 95% Student t quantiles by degrees of freedom (rounds - 1).
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23,
       11: 2.20, 12: 2.18, 13: 2.16, 14: 2.14, 15: 2.13, 19: 2.09, 24: 2.06, 29: 2.05}


def geo_ci(ratios):
    """95% confidence interval of the geometric mean of per-round ratios (t interval on
    their logarithms), or None with fewer than 3 ratios."""
    logs = [math.log(r) for r in ratios]
    if len(logs) < 3:
        return None
    df = len(logs) - 1
    t = T95.get(df) or T95[max(k for k in T95 if k <= df)]
    half = t * statistics.stdev(logs) / math.sqrt(len(logs))
    mean = statistics.fmean(logs)
    return math.exp(mean - half), math.exp(mean + half)


def against_goal(ci, goal, at_most=False):
    """How a ratio's 95% interval `ci` (low, high) stands against `goal`: 'met', 'missed', or
    'within noise of the goal' when the interval holds it. `at_most`: the goal is an upper
    bound (smaller is better)."""
    if ci is None:
        return "no interval (fewer than 3 rounds)"
    low, high = ci
    if low <= goal <= high:
        return "within noise of the goal"
    met = high < goal if at_most else low > goal
    return "met" if met else "missed"
