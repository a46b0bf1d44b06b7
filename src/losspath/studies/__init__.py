"""One short recipe per paper: each composes hparams → train → lines → metrics → plots."""
