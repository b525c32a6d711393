/* placeholder */
int lmr_datasets_placeholder;
