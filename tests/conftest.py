from hypothesis import HealthCheck, settings

# The first examples pay for imports and JIT warm-up, and the machine is shared with a broker
# and other runs: a deadline or a slow-generation check would fail on load, not on a defect.
settings.register_profile(
    "triage", deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("triage")
