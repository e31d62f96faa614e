import DiffEdit
print("diffedit: CLI under construction")
