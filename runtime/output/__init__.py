"""What a retrieve run hands back: the JSON records (written and read here) and the result grid."""
