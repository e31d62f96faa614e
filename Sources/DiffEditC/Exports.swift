import DiffEdit
