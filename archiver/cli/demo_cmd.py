def attach(group):
    pass
