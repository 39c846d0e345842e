# Writes synthetic Google Books 2012-format n-gram files for the integration tests
# (it_docker.sh, it_netns.sh): `ngram TAB year TAB match_count TAB volume_count`.
#
#   gawk -v dir=DIR -v files=8 -v lines=2000000 -v seed=7 -f ngrams.awk
#
# Keys are 1- to 3-grams over a small vocabulary with a skewed (Zipf-like) choice of
# words, some POS-tagged, some with non-ASCII bytes, so that a few keys are very common
# and most are rare, as in the real corpus. Every line is well-formed: an independent
# gawk sum over the files is the exact expected result. Same seed, same files.
BEGIN {
    if (dir == "" || files < 1 || lines < 1) {
        print "usage: gawk -v dir=DIR -v files=N -v lines=N [-v seed=S] -f ngrams.awk" > "/dev/stderr"
        exit 2
    }
    srand(seed == "" ? 1 : seed)
    nv = split("the of and to in a is that for it as was with be by on not he I this are or " \
               "his from at which but have an they you were her she there been one all we " \
               "their has would when if so no out more my up said what its about into than " \
               "them can only other new some time could these two may then do first any now " \
               "such like our over man me even most made after also did many before must " \
               "through back years where much your way well down should because each just " \
               "those people how too little state good very make world still see own men " \
               "work long get here between both life being under never day same another " \
               "know while last might us great old year off come since against go came " \
               "right used take three café naïve Zürich façade señor cœur", vocab, " ")
    per_file = int(lines / files)
    for (f = 0; f < files; f++) {
        file = sprintf("%s/googlebooks-eng-all-2gram-20120701-%02d.tsv", dir, f)
        for (i = 0; i < per_file; i++) {
            a = vocab[1 + int(rand() ^ 2 * nv)]
            b = vocab[1 + int(rand() ^ 3 * nv)]
            r = rand()
            if (r < 0.1)
                key = a "_NOUN"
            else if (r < 0.55)
                key = a " " b
            else
                key = a " " b " " int(rand() * 1000)
            printf "%s\t%d\t%d\t%d\n", key, 1800 + int(rand() * 209),
                   1 + int(rand() ^ 4 * 100000), 1 + int(rand() * 50) > file
        }
        close(file)
    }
}
