/*  placeholder so the library has a source while modules are written  */
int tl_placeholder_ (void);
int tl_placeholder_ (void)
{
    return 0;
}
