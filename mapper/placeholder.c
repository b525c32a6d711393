/* placeholder */
int lmr_mapper_placeholder;
