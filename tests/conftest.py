from hypothesis import settings

# The first examples pay for imports and JIT warm-up; a deadline would make them flaky.
settings.register_profile("triage", deadline=None, max_examples=300)
settings.load_profile("triage")
