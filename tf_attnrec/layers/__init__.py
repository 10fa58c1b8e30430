"""tf_attnrec.layers"""
