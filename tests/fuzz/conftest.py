from fuzz.fuzzing import load_profile

load_profile()
