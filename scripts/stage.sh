# Sourced by the training recipes (scripts/train_*.sh), run from the repository root.
# stage RUN CONFIG [ARGS...]: train CONFIG (with koala train's ARGS, e.g. --set train.epochs=45)
# unless runs/RUN holds a finished run (koala train refuses to redo one); a stopped stage resumes
# from its backup.
stage() {
    [ -f "runs/$1/best.keras" ] && [ ! -d "runs/$1/backup" ] && return
    .venv/bin/koala train --config "$2" "${@:3}"
}
