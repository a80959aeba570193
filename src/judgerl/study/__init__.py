"""The reward-hacking study (issue 15): gold RM, labels at volume, graded judges, policy runs, analysis."""
