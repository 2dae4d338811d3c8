class Summary: pass
def summary(*a): pass
